package io.hpvm.runtime;

import java.util.Collection;

/**
 * One JSON object, written in the order its fields are put ({@code --json}: one object per line, per result, for
 * scripts and fleet tools). Values: strings, numbers, booleans, null, nested objects and collections of these.
 */
public final class Json {

    private final StringBuilder b = new StringBuilder("{");

    public Json put(String key, Object value) {
        if (b.length() > 1) {
            b.append(',');
        }
        quote(b, key);
        b.append(':');
        value(b, value);
        return this;
    }

    private static void value(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Json j) {
            b.append(j);
        } else if (v instanceof Number || v instanceof Boolean) {
            b.append(v);
        } else if (v instanceof java.util.Map<?, ?> m) {
            Json o = new Json();
            m.forEach((k, x) -> o.put(String.valueOf(k), x));
            b.append(o);
        } else if (v instanceof Collection<?> c) {
            b.append('[');
            boolean first = true;
            for (Object o : c) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                value(b, o);
            }
            b.append(']');
        } else {
            quote(b, v.toString());
        }
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x7f) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }

    @Override
    public String toString() {
        return b + "}";
    }
}
