package io.hpvm.runtime.session;

import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/** The registry's value encoding: {@code key=value;key=value} with URL-encoded values. Readable with any tool. */
final class Fields {

    private final Map<String, String> map = new LinkedHashMap<>();

    static Fields parse(String encoded) {
        Fields f = new Fields();
        if (encoded == null || encoded.isEmpty()) {
            return f;
        }
        for (String part : encoded.split(";")) {
            int eq = part.indexOf('=');
            if (eq > 0) {
                f.map.put(part.substring(0, eq), URLDecoder.decode(part.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        return f;
    }

    Fields put(String key, Object value) {
        map.put(key, String.valueOf(value));
        return this;
    }

    String str(String key) {
        String v = map.get(key);
        return v == null ? "" : v;
    }

    long num(String key) {
        String v = map.get(key);
        return v == null || v.isEmpty() ? 0 : Long.parseLong(v);
    }

    int integer(String key) {
        return (int) num(key);
    }

    String encode() {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<String, String> e : map.entrySet()) {
            if (b.length() > 0) {
                b.append(';');
            }
            b.append(e.getKey()).append('=').append(URLEncoder.encode(e.getValue(), StandardCharsets.UTF_8));
        }
        return b.toString();
    }
}
