package sqlserver

import (
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// What describes and guards a column belongs to its column ID: its
// extended properties (MS_Description, which SSMS shows as the column's
// description, and any other) and its column permissions (GRANT or DENY
// SELECT, UPDATE, REFERENCES on the column). Dropping the column drops
// them, and the column renamed into its place has none, so a cut-over
// would silently lose a DENY SELECT on an SSN column, and a revert would
// lose it again.
//
// A swap therefore saves them, before it drops anything, into two
// temporary tables of its session (it runs all its steps on one
// connection, each as a batch without parameters, so a temporary table
// lives from one step to the next), and gives them to the columns that take
// the names after the renames, in the same transaction. Property values
// travel as sql_variant, so each keeps its type; the permissions are
// granted or denied again by colcrypt's user, which therefore needs the
// right to grant them when there are any: without it the whole cut-over
// fails and rolls back, naming the permission, rather than lose it.
const (
	carriedProperties  = "#colcrypt_properties"
	carriedPermissions = "#colcrypt_permissions"
)

// saveColumnMetadataStep saves the extended properties and column
// permissions of the columns as the table has them now, under their names.
func saveColumnMetadataStep(tn schema.TableName, cols []dialect.SwapColumn) step {
	names := make([]string, len(cols))
	for i, sc := range cols {
		names[i] = nstr(sc.Name)
	}
	of := "p.class = 1 AND p.major_id = OBJECT_ID(" + nstr(quoteTable(tn)) + ", N'U') AND c.name IN (" + strings.Join(names, ", ") + ")"
	columns := "JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id\n"
	return step{"save the extended properties and permissions of the columns of " + tn.String(),
		dropTempTableSQL(carriedProperties) + "\n" +
			"SELECT c.name AS column_name, p.name, p.value INTO " + carriedProperties + "\n" +
			"FROM sys.extended_properties AS p " + columns +
			"WHERE " + of + ";\n" +
			dropTempTableSQL(carriedPermissions) + "\n" +
			"SELECT c.name AS column_name, p.permission_name, p.state, u.name AS grantee INTO " + carriedPermissions + "\n" +
			"FROM sys.database_permissions AS p " + columns +
			"JOIN sys.database_principals AS u ON u.principal_id = p.grantee_principal_id\n" +
			"WHERE " + of + " AND p.state IN ('G', 'W', 'D');"}
}

// restoreColumnMetadataStep gives the saved properties and permissions to
// the columns that now have the names, then drops the temporary tables.
func restoreColumnMetadataStep(tn schema.TableName) step {
	return step{"give the saved extended properties and permissions to the columns of " + tn.String(), `DECLARE @column sysname, @name sysname, @value sql_variant, @grants nvarchar(max) = N'';
DECLARE carried CURSOR LOCAL FAST_FORWARD FOR SELECT column_name, name, value FROM ` + carriedProperties + `;
OPEN carried;
FETCH NEXT FROM carried INTO @column, @name, @value;
WHILE @@FETCH_STATUS = 0
BEGIN
	EXEC sys.sp_addextendedproperty @name = @name, @value = @value, @level0type = N'SCHEMA', @level0name = ` + nstr(tn.Schema) + `,
		@level1type = N'TABLE', @level1name = ` + nstr(tn.Name) + `, @level2type = N'COLUMN', @level2name = @column;
	FETCH NEXT FROM carried INTO @column, @name, @value;
END;
CLOSE carried;
DEALLOCATE carried;
SELECT @grants = @grants + CASE state WHEN 'D' THEN N'DENY ' ELSE N'GRANT ' END + permission_name +
	N' (' + QUOTENAME(column_name) + N') ON ' + ` + nstr(quoteTable(tn)) + ` + N' TO ' + QUOTENAME(grantee) +
	CASE state WHEN 'W' THEN N' WITH GRANT OPTION' ELSE N'' END + N'; '
FROM ` + carriedPermissions + `;
EXEC sys.sp_executesql @grants;
DROP TABLE ` + carriedProperties + `, ` + carriedPermissions + `;`}
}

// dropTempTableSQL drops a temporary table of the session if it is there
// (left by an earlier statement of a session that failed).
func dropTempTableSQL(name string) string {
	return "IF OBJECT_ID(" + nstr("tempdb.."+name) + ") IS NOT NULL DROP TABLE " + name + ";"
}
