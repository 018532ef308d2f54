// pgjdbc against a running Eddy: DatabaseMetaData (getTables, getColumns, getPrimaryKeys,
// getTypeInfo, getSchemas) and a prepared statement. Run by tests/tests/drivers.rs with the
// port as argument, after it created the compatibility suite's objects. Prints "ok jdbc".

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

public class JdbcMetadata {
    static void check(String what, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(what + ": got " + got + ", want " + want);
        }
    }

    static List<String> column(ResultSet rs, String name) throws Exception {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            out.add(rs.getString(name));
        }
        rs.close();
        return out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/eddy";
        try (Connection conn = DriverManager.getConnection(url, "analyst", "")) {
            DatabaseMetaData meta = conn.getMetaData();
            check("product", meta.getDatabaseProductName(), "PostgreSQL");
            check("major version", meta.getDatabaseMajorVersion(), 16);

            check("tables", column(meta.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME"),
                    List.of("clicks", "users"));
            check("views", column(meta.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME"),
                    List.of("heavy"));
            check("materialized views",
                    column(meta.getTables(null, "public", "%", new String[] {"MATERIALIZED VIEW"}), "TABLE_NAME"),
                    List.of("per_user"));

            ResultSet cols = meta.getColumns(null, "public", "users", "%");
            List<String> described = new ArrayList<>();
            while (cols.next()) {
                described.add(cols.getString("COLUMN_NAME") + ":" + cols.getString("TYPE_NAME") + ":"
                        + cols.getString("IS_NULLABLE"));
            }
            check("columns", described, List.of("id:int8:NO", "name:text:YES", "price:numeric:YES"));

            check("primary key", column(meta.getPrimaryKeys(null, "public", "users"), "COLUMN_NAME"), List.of("id"));
            check("schemas contain public", column(meta.getSchemas(), "TABLE_SCHEM").contains("public"), true);
            check("type info has int8", column(meta.getTypeInfo(), "TYPE_NAME").contains("int8"), true);

            try (PreparedStatement ps = conn.prepareStatement("SELECT n FROM per_user WHERE user_id = ?")) {
                ps.setLong(1, 1L);
                try (ResultSet rs = ps.executeQuery()) {
                    check("row", rs.next(), true);
                    check("n", rs.getLong(1), 2L);
                }
            }
        }
        System.out.println("ok jdbc");
    }
}
