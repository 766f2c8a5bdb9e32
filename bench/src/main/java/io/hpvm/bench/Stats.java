package io.hpvm.bench;

import java.util.Arrays;
import java.util.List;

/** Median and spread of a sample. */
record Stats(double median, double min, double max, int n) {

    static Stats of(List<Double> values) {
        double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        if (v.length == 0) {
            return new Stats(Double.NaN, Double.NaN, Double.NaN, 0);
        }
        double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
        return new Stats(median, v[0], v[v.length - 1], v.length);
    }

    static Stats of(double... values) {
        return of(Arrays.stream(values).boxed().toList());
    }

    /** "1.23 (1.20-1.31, n=7)" with the given format for each number. */
    String format(String f) {
        return String.format(f + " (" + f + "-" + f + ", n=%d)", median, min, max, n);
    }
}
