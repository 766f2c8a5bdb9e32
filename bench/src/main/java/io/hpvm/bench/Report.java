package io.hpvm.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The result table (figure, measured, goal, met?) and free-form detail sections, as text and Markdown. */
final class Report {

    record Row(String section, String figure, String measured, String goal, Boolean met, String note) {
    }

    private final List<Row> rows = new ArrayList<>();
    private final List<String> details = new ArrayList<>();
    final List<String> header = new ArrayList<>();

    void row(String section, String figure, String measured, String goal, Boolean met, String note) {
        rows.add(new Row(section, figure, measured, goal, met, note));
        System.out.printf("%-28s %-44s %-30s %s%n", section, figure, measured,
            goal.isEmpty() ? "" : "goal " + goal + (met == null ? "" : met ? "  MET" : "  NOT MET"));
    }

    void detail(String markdown) {
        details.add(markdown);
    }

    void write(Path file) throws IOException {
        StringBuilder b = new StringBuilder();
        b.append("# hpvm benchmark results\n\n");
        header.forEach(h -> b.append(h).append("\n"));
        b.append("\n| area | figure | measured | goal | status | note |\n|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            b.append("| ").append(r.section).append(" | ").append(r.figure).append(" | ").append(r.measured)
                .append(" | ").append(r.goal).append(" | ")
                .append(r.met == null ? "" : r.met ? "met" : "**not met**").append(" | ").append(r.note)
                .append(" |\n");
        }
        b.append("\n");
        details.forEach(d -> b.append(d).append("\n\n"));
        Files.writeString(file, b.toString());
    }
}
