/*
 * Runs SQL through the official ClickHouse JDBC driver with its default settings (compression
 * included), so the integration tests can check that our ClickHouse HTTP interface serves Java
 * tools. Built by `make setup` (the Makefile's jdbc-client target) into .local/jdbc/; driven by
 * tests/integration/jdbc_client.py.
 *
 *   java -cp '.local/jdbc:.local/jdbc-jars/*' QueryClient JDBC_URL USER PASSWORD [LINE ...]
 *
 * Each line (an argument, or a line of standard input when no line is given) is one statement,
 * run in order on one connection with a plain Statement, unless lines starting with "> " follow
 * it: then it is a PreparedStatement with `?` placeholders, each such line one row as a JSON
 * array of scalars (strings, integers, other numbers, true/false, null) bound in order and added
 * with addBatch(), and executeBatch() runs after the last row.
 *
 * Prints one JSON line per statement: {"columns": [...], "rows": [[...], ...], "update_count": N}
 * with every value as a string (or null); update_count is -1 for a result set, else the driver's
 * count (the server's X-ClickHouse-Summary written_rows; -2 for a batch whose count is unknown). On the first
 * failure prints {"error": "..."} and exits with status 1.
 */

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

public final class QueryClient {
    private static final String ROW_PREFIX = "> ";

    private QueryClient() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        if (args.length < 3) {
            out.println(error("usage: QueryClient JDBC_URL USER PASSWORD [STATEMENT ...]"));
            System.exit(2);
        }
        List<String> lines = args.length > 3
                ? Arrays.asList(args).subList(3, args.length)
                : readStdin();
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            for (int i = 0; i < lines.size(); i++) {
                String sql = lines.get(i);
                if (sql.isBlank()) {
                    continue;
                }
                List<String> rows = new ArrayList<>();
                while (i + 1 < lines.size() && lines.get(i + 1).startsWith(ROW_PREFIX)) {
                    rows.add(lines.get(++i).substring(ROW_PREFIX.length()));
                }
                out.println(rows.isEmpty() ? run(conn, sql) : runBatch(conn, sql, rows));
            }
        } catch (Exception e) {
            out.println(error(describe(e)));
            out.flush();
            System.exit(1);
        }
    }

    private static List<String> readStdin() throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<String> lines = new ArrayList<>();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            lines.add(line);
        }
        return lines;
    }

    private static String run(Connection conn, String sql) throws SQLException {
        try (Statement stmt = conn.createStatement()) {
            if (stmt.execute(sql)) {
                try (ResultSet rs = stmt.getResultSet()) {
                    return resultJson(rs, -1);
                }
            }
            return resultJson(null, stmt.getUpdateCount());
        }
    }

    private static String runBatch(Connection conn, String sql, List<String> rows) throws SQLException {
        try (PreparedStatement stmt = conn.prepareStatement(sql)) {
            for (String row : rows) {
                List<Object> values = JsonRow.parse(row);
                for (int c = 0; c < values.size(); c++) {
                    bind(stmt, c + 1, values.get(c));
                }
                stmt.addBatch();
            }
            // The driver reports 1 per row when the server's X-ClickHouse-Summary says that many
            // rows were written, else SUCCESS_NO_INFO (-2) for each: the sum, or -2 if any is unknown.
            long total = 0;
            for (int count : stmt.executeBatch()) {
                if (count < 0) {
                    return resultJson(null, Statement.SUCCESS_NO_INFO);
                }
                total += count;
            }
            return resultJson(null, total);
        }
    }

    private static void bind(PreparedStatement stmt, int index, Object value) throws SQLException {
        if (value == null) {
            stmt.setNull(index, Types.NULL);
        } else if (value instanceof Long) {
            stmt.setLong(index, (Long) value);
        } else if (value instanceof Double) {
            stmt.setDouble(index, (Double) value);
        } else if (value instanceof Boolean) {
            stmt.setBoolean(index, (Boolean) value);
        } else {
            stmt.setString(index, (String) value);
        }
    }

    private static String resultJson(ResultSet rs, long updateCount) throws SQLException {
        StringBuilder json = new StringBuilder("{\"columns\": [");
        StringBuilder rows = new StringBuilder();
        if (rs != null) {
            ResultSetMetaData meta = rs.getMetaData();
            int n = meta.getColumnCount();
            for (int c = 1; c <= n; c++) {
                json.append(c > 1 ? ", " : "").append(quote(meta.getColumnLabel(c)));
            }
            while (rs.next()) {
                rows.append(rows.length() > 0 ? ", [" : "[");
                for (int c = 1; c <= n; c++) {
                    rows.append(c > 1 ? ", " : "").append(quote(rs.getString(c)));
                }
                rows.append(']');
            }
        }
        return json.append("], \"rows\": [").append(rows).append("], \"update_count\": ")
                .append(updateCount).append('}').toString();
    }

    private static String describe(Throwable e) {
        StringBuilder text = new StringBuilder(e.getClass().getSimpleName() + ": " + e.getMessage());
        for (Throwable cause = e.getCause(); cause != null && cause != cause.getCause(); cause = cause.getCause()) {
            text.append(" | caused by ").append(cause.getClass().getSimpleName()).append(": ").append(cause.getMessage());
        }
        return text.toString();
    }

    private static String error(String message) {
        return "{\"error\": " + quote(message) + "}";
    }

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder q = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"': q.append("\\\""); break;
                case '\\': q.append("\\\\"); break;
                case '\n': q.append("\\n"); break;
                case '\r': q.append("\\r"); break;
                case '\t': q.append("\\t"); break;
                default:
                    if (ch < 0x20) {
                        q.append(String.format("\\u%04x", (int) ch));
                    } else {
                        q.append(ch);
                    }
            }
        }
        return q.append('"').toString();
    }

    /** Parses a JSON array of scalars: strings, integers (Long), other numbers (Double), booleans, null. */
    static final class JsonRow {
        private final String text;
        private int pos;

        private JsonRow(String text) {
            this.text = text;
        }

        static List<Object> parse(String text) {
            JsonRow p = new JsonRow(text);
            List<Object> values = new ArrayList<>();
            p.expect('[');
            if (p.peek() == ']') {
                p.pos++;
                return values;
            }
            do {
                values.add(p.scalar());
            } while (p.next() == ',');
            if (text.charAt(p.pos - 1) != ']') {
                throw new IllegalArgumentException("row is not a JSON array: " + text);
            }
            return values;
        }

        private char peek() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
            if (pos >= text.length()) {
                throw new IllegalArgumentException("row ends early: " + text);
            }
            return text.charAt(pos);
        }

        private char next() {
            char ch = peek();
            pos++;
            return ch;
        }

        private void expect(char ch) {
            if (next() != ch) {
                throw new IllegalArgumentException("expected '" + ch + "' at " + (pos - 1) + ": " + text);
            }
        }

        private Object scalar() {
            char ch = peek();
            if (ch == '"') {
                return string();
            }
            int start = pos;
            while (pos < text.length() && ",] \t".indexOf(text.charAt(pos)) < 0) {
                pos++;
            }
            String word = text.substring(start, pos);
            switch (word) {
                case "null": return null;
                case "true": return Boolean.TRUE;
                case "false": return Boolean.FALSE;
                default:
                    return word.matches("-?\\d+") ? (Object) Long.valueOf(word) : (Object) Double.valueOf(word);
            }
        }

        private String string() {
            expect('"');
            StringBuilder s = new StringBuilder();
            for (char ch = text.charAt(pos++); ch != '"'; ch = text.charAt(pos++)) {
                if (ch != '\\') {
                    s.append(ch);
                    continue;
                }
                char esc = text.charAt(pos++);
                switch (esc) {
                    case 'n': s.append('\n'); break;
                    case 'r': s.append('\r'); break;
                    case 't': s.append('\t'); break;
                    case 'b': s.append('\b'); break;
                    case 'f': s.append('\f'); break;
                    case 'u':
                        s.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                        break;
                    default: s.append(esc);
                }
            }
            return s.toString();
        }
    }
}
