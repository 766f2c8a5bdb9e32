package io.hpvm.runtime.swap;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The line matching of 'hpvm patch' against a longest common subsequence computed the slow way. */
class SourceLinesTest {

    /** Length of a longest common subsequence, by dynamic programming. */
    static int lcs(List<String> a, List<String> b) {
        int[][] t = new int[a.size() + 1][b.size() + 1];
        for (int i = a.size() - 1; i >= 0; i--) {
            for (int j = b.size() - 1; j >= 0; j--) {
                t[i][j] = a.get(i).equals(b.get(j)) ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
            }
        }
        return t[0][0];
    }

    @Test
    void matchesALongestCommonSubsequenceOfRandomEdits() {
        Random r = new Random(12345);
        for (int round = 0; round < 2000; round++) {
            List<String> a = new ArrayList<>();
            for (int i = r.nextInt(30); i > 0; i--) {
                a.add("l" + r.nextInt(6)); // few distinct lines: many ways to match
            }
            List<String> b = new ArrayList<>(a);
            for (int e = r.nextInt(6); e > 0; e--) {
                int at = b.isEmpty() ? 0 : r.nextInt(b.size() + 1);
                switch (r.nextInt(3)) {
                    case 0 -> b.add(at, "n" + r.nextInt(4));
                    case 1 -> { if (at < b.size()) b.remove(at); }
                    default -> { if (at < b.size()) b.set(at, "c" + r.nextInt(3)); }
                }
            }
            int[] m = SourceLines.match(a, b);
            int matched = 0;
            int last = -1;
            for (int j = 0; j < b.size(); j++) {
                if (m[j] >= 0) {
                    assertTrue(m[j] > last, "increasing: " + a + " / " + b);
                    assertEquals(a.get(m[j]), b.get(j), a + " / " + b);
                    last = m[j];
                    matched++;
                }
            }
            assertEquals(lcs(a, b), matched, "as many lines matched as can be: " + a + " / " + b);
        }
    }

    @Test
    void renumbersTheLinesAfterAnInsertion() {
        List<String> before = List.of("int a;", "int f(void) {", "  return 1;", "}", "int g(void) {", "  return 2;",
            "}");
        List<String> after = new ArrayList<>(before);
        after.add(2, "  a++;");
        assertEquals("int a;\nint f(void) {\n  a++;\n#line 3\n  return 1;\n}\nint g(void) {\n  return 2;\n}\n",
            SourceLines.renumbered(before, after));
        assertNull(SourceLines.renumbered(before, before), "nothing moved");
        List<String> changedOnly = new ArrayList<>(before);
        changedOnly.set(2, "  return 3;");
        assertNull(SourceLines.renumbered(before, changedOnly), "a line changed in place moves nothing");
    }

    @Test
    void noDirectiveInsideACommentOrAfterABackslash() {
        List<String> before = List.of("/* a", "   b */", "#define M(x) \\", "  (x + 1)", "int v = M(2);");
        List<String> after = List.of("/* new", "/* a", "   b */", "#define M(x) \\", "  (x + 1)", "int v = M(2);");
        String out = SourceLines.renumbered(before, after);
        // "/* new" opens a comment the old first line continues: the directive waits until it is closed
        assertEquals("/* new\n/* a\n   b */\n#line 3\n#define M(x) \\\n  (x + 1)\nint v = M(2);\n", out);
        assertFalse(SourceLines.endsInComment("x = \"/*\"; // /*", false));
        assertTrue(SourceLines.endsInComment("y = 1; /* open", false));
    }
}
