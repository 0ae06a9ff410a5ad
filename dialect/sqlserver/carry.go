package sqlserver

import (
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// What describes and guards a column belongs to its column ID: its
// extended properties (MS_Description, which SSMS shows as the column's
// description, and any other), its column permissions (GRANT or DENY
// SELECT, UPDATE, REFERENCES on the column) and, from SQL Server 2019 on,
// its sensitivity classification (Data Discovery & Classification's label,
// information type and rank). Dropping the column drops them all, and the
// column renamed into its place has none: a cut-over would silently lose a
// DENY SELECT or a "Highly Confidential" label on an SSN column, and a
// revert would lose them again.
//
// A swap therefore saves them, before it drops anything, into temporary
// tables of its session (it runs all its steps on one connection, each as
// a batch without parameters, so a temporary table lives from one step to
// the next), and gives them to the columns that take the names after the
// renames, in the same transaction. Property values travel as sql_variant,
// so each keeps its type. The permissions and classifications are granted,
// denied and added again by colcrypt's user, which therefore needs the
// right to do so when there are any: without it the whole cut-over fails
// and rolls back, naming what it could not give back, rather than lose it.
const (
	carriedProperties      = "#colcrypt_properties"
	carriedPermissions     = "#colcrypt_permissions"
	carriedClassifications = "#colcrypt_classifications"
)

// saveColumnMetadataStep saves the extended properties, column permissions
// and sensitivity classifications of the columns as the table has them
// now, under their names (compared in the database's collation, as the
// catalog compares them). sys.sensitivity_classifications exists from SQL
// Server 2019 on, so it is read through sp_executesql when it is there: a
// batch naming it would not compile on older servers.
func saveColumnMetadataStep(tn schema.TableName, cols []dialect.SwapColumn) step {
	names := make([]string, len(cols))
	for i, sc := range cols {
		names[i] = nstr(sc.Name)
	}
	in := strings.Join(names, ", ")
	of := "p.class = 1 AND p.major_id = OBJECT_ID(" + nstr(quoteTable(tn)) + ", N'U') AND c.name IN (" + in + ")"
	columns := "JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id\n"
	return step{"save the extended properties, permissions and classifications of the columns of " + tn.String(),
		dropTempTableSQL(carriedProperties) + "\n" +
			"SELECT c.name AS column_name, p.name, p.value INTO " + carriedProperties + "\n" +
			"FROM sys.extended_properties AS p " + columns +
			"WHERE " + of + ";\n" +
			dropTempTableSQL(carriedPermissions) + "\n" +
			"SELECT c.name AS column_name, p.permission_name, p.state, u.name AS grantee INTO " + carriedPermissions + "\n" +
			"FROM sys.database_permissions AS p " + columns +
			"JOIN sys.database_principals AS u ON u.principal_id = p.grantee_principal_id\n" +
			"WHERE " + of + " AND p.state IN ('G', 'W', 'D');\n" +
			dropTempTableSQL(carriedClassifications) + "\n" +
			"CREATE TABLE " + carriedClassifications + " (column_name sysname COLLATE DATABASE_DEFAULT NOT NULL,\n" +
			"\tlabel sysname NULL, label_id sysname NULL, information_type sysname NULL, information_type_id sysname NULL, rank_desc sysname NULL);\n" +
			"IF OBJECT_ID(N'sys.sensitivity_classifications') IS NOT NULL\n" +
			"\tEXEC sys.sp_executesql " + nstr(saveClassificationsSQL) + ", N'@table nvarchar(max)', @table = " + nstr(quoteTable(tn)) + ";\n" +
			"DELETE FROM " + carriedClassifications + " WHERE column_name NOT IN (" + in + ");"}
}

// saveClassificationsSQL saves the sensitivity classifications of the
// columns of the table @table, run by sp_executesql where the view exists.
const saveClassificationsSQL = "INSERT INTO " + carriedClassifications + `
SELECT c.name, p.label, p.label_id, p.information_type, p.information_type_id, p.rank_desc
FROM sys.sensitivity_classifications AS p JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id
WHERE p.class = 1 AND p.major_id = OBJECT_ID(@table, N'U')`

// restoreColumnMetadataStep gives the saved properties, permissions and
// classifications to the columns that now have the names, then drops the
// temporary tables.
func restoreColumnMetadataStep(tn schema.TableName) step {
	qt := nstr(quoteTable(tn))
	return step{"give the saved extended properties, permissions and classifications to the columns of " + tn.String(),
		`DECLARE @column sysname, @name sysname, @value sql_variant, @grants nvarchar(max) = N'', @classify nvarchar(max) = N'';
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
	N' (' + QUOTENAME(column_name) + N') ON ' + ` + qt + ` + N' TO ' + QUOTENAME(grantee) +
	CASE state WHEN 'W' THEN N' WITH GRANT OPTION' ELSE N'' END + N'; '
FROM ` + carriedPermissions + `;
EXEC sys.sp_executesql @grants;
SELECT @classify = @classify + N'ADD SENSITIVITY CLASSIFICATION TO ' + ` + qt + ` + N'.' + QUOTENAME(column_name) + N' WITH (' +
	STUFF(ISNULL(N', LABEL = N' + QUOTENAME(label, N''''), N'') + ISNULL(N', LABEL_ID = N' + QUOTENAME(label_id, N''''), N'') +
		ISNULL(N', INFORMATION_TYPE = N' + QUOTENAME(information_type, N''''), N'') +
		ISNULL(N', INFORMATION_TYPE_ID = N' + QUOTENAME(information_type_id, N''''), N'') +
		ISNULL(N', RANK = ' + rank_desc, N''), 1, 2, N'') + N'); '
FROM ` + carriedClassifications + `
WHERE COALESCE(label, label_id, information_type, information_type_id, rank_desc) IS NOT NULL;
EXEC sys.sp_executesql @classify;
DROP TABLE ` + carriedProperties + `, ` + carriedPermissions + `, ` + carriedClassifications + `;`}
}

// dropTempTableSQL drops a temporary table of the session if it is there
// (left by an earlier statement of a session that failed).
func dropTempTableSQL(name string) string {
	return "IF OBJECT_ID(" + nstr("tempdb.."+name) + ") IS NOT NULL DROP TABLE " + name + ";"
}
