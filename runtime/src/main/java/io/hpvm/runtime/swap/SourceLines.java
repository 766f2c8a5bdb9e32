package io.hpvm.runtime.swap;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An edited source file renumbered to its original's lines, for {@code hpvm patch}: the lines the edit did not touch
 * get the numbers they had before it ({@code #line} directives before each run of them), so a function below an
 * inserted line compiles to the same code as before, {@code __LINE__} in its {@code assert()}s included, and is not
 * reported as changed. kpatch's create-diff-object reaches the same end by recognising the instructions that load a
 * line number before a warning call; renumbering needs no knowledge of the macros or of the instruction set.
 *
 * <p>The copy is compiled only to find what changed; the swap itself uses the file as written, so that a changed
 * function reports its own lines. The lines are matched with Myers' diff (E. Myers, "An O(ND) Difference Algorithm
 * and Its Variations", 1986), after the common head and tail are set aside.
 */
final class SourceLines {

    /** Beyond this many differing lines the files are not matched (the diff's memory grows with its square). */
    static final int MAX_DIFFERENCES = 4000;

    private SourceLines() {
    }

    /**
     * {@code edited} with a {@code #line} directive wherever its numbering departs from {@code original}'s, or null
     * when it needs none (no line moved) or the two are too different to match.
     */
    static String renumbered(List<String> original, List<String> edited) {
        int[] from = match(original, edited);
        if (from == null) {
            return null;
        }
        StringBuilder out = new StringBuilder();
        boolean needed = false;
        boolean inComment = false;
        boolean continued = false;
        int expected = 1; // the number the compiler gives the next line
        for (int j = 0; j < edited.size(); j++) {
            String line = edited.get(j);
            int wanted = from[j] < 0 ? -1 : from[j] + 1;
            // a directive may go only where a line of code can begin: not in a comment, not after a backslash
            if (wanted > 0 && wanted != expected && !inComment && !continued) {
                out.append("#line ").append(wanted).append('\n');
                expected = wanted;
                needed = true;
            }
            out.append(line).append('\n');
            expected++;
            inComment = endsInComment(line, inComment);
            continued = line.endsWith("\\");
        }
        return needed ? out.toString() : null;
    }

    /** For each line of {@code b}, the index of the line of {@code a} it is matched with, or -1 (inserted). */
    static int[] match(List<String> a, List<String> b) {
        int[] out = new int[b.size()];
        Arrays.fill(out, -1);
        int head = 0;
        while (head < a.size() && head < b.size() && a.get(head).equals(b.get(head))) {
            out[head] = head;
            head++;
        }
        int tail = 0;
        while (tail < a.size() - head && tail < b.size() - head
            && a.get(a.size() - 1 - tail).equals(b.get(b.size() - 1 - tail))) {
            out[b.size() - 1 - tail] = a.size() - 1 - tail;
            tail++;
        }
        List<String> x = a.subList(head, a.size() - tail);
        List<String> y = b.subList(head, b.size() - tail);
        int n = x.size();
        int m = y.size();
        if (n == 0 || m == 0) {
            return out;
        }
        int max = Math.min(n + m, MAX_DIFFERENCES);
        int offset = max + 1;
        int[] v = new int[2 * max + 3];
        List<int[]> trace = new ArrayList<>();
        int found = -1;
        for (int d = 0; d <= max && found < 0; d++) {
            trace.add(Arrays.copyOfRange(v, offset - d - 1, offset + d + 2));
            for (int k = -d; k <= d; k += 2) {
                int i = k == -d || k != d && v[offset + k - 1] < v[offset + k + 1]
                    ? v[offset + k + 1] : v[offset + k - 1] + 1;
                int j = i - k;
                while (i < n && j < m && x.get(i).equals(y.get(j))) {
                    i++;
                    j++;
                }
                v[offset + k] = i;
                if (i >= n && j >= m) {
                    found = d;
                    break;
                }
            }
        }
        if (found < 0) {
            return null;
        }
        // Back from (n, m): each step of d came from k-1 (a line of x deleted) or k+1 (a line of y inserted), after
        // which a diagonal (matched lines) led to where it ended.
        int i = n;
        int j = m;
        for (int d = found; d > 0; d--) {
            int[] prev = trace.get(d); // v before step d, indexes -d-1..d+1 around 0 -> 0..2d+2
            int k = i - j;
            boolean down = k == -d || k != d && prev[k - 1 + d + 1] < prev[k + 1 + d + 1];
            int prevK = down ? k + 1 : k - 1;
            int prevI = prev[prevK + d + 1];
            int prevJ = prevI - prevK;
            int startI = down ? prevI : prevI + 1;
            int startJ = startI - k;
            while (i > startI && j > startJ) {
                out[head + j - 1] = head + i - 1;
                i--;
                j--;
            }
            i = prevI;
            j = prevJ;
        }
        while (i > 0 && j > 0) {
            out[head + j - 1] = head + i - 1;
            i--;
            j--;
        }
        return out;
    }

    /**
     * Whether a block comment is open at the end of {@code line}, given whether one was at its start (string and
     * character literals and line comments taken into account; enough to keep a directive out of a comment).
     */
    static boolean endsInComment(String line, boolean open) {
        boolean comment = open;
        char quote = 0;
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            char next = i + 1 < line.length() ? line.charAt(i + 1) : 0;
            if (comment) {
                if (c == '*' && next == '/') {
                    comment = false;
                    i++;
                }
            } else if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == '/' && next == '/') {
                return false;
            } else if (c == '/' && next == '*') {
                comment = true;
                i++;
            }
        }
        return comment;
    }
}
