package sqlserver

import (
	"strings"

	"github.com/colcrypt/colcrypt/schema"
)

// fixtureDDL creates the conformance schema, one batch per element: CREATE
// TRIGGER and CREATE VIEW must each be alone in their batch.
var fixtureDDL = []string{
	`CREATE TABLE dbo.cc_customers (
    id int IDENTITY(1,1) NOT NULL CONSTRAINT cc_customers_pkey PRIMARY KEY,
    ssn char(11) NOT NULL CONSTRAINT cc_customers_ssn_key UNIQUE,
    email varchar(64) NULL,
    status varchar(10) NOT NULL CONSTRAINT df DEFAULT ('new')
        CONSTRAINT cc_customers_status_check CHECK (status IN ('new', 'vip')),
    notes nvarchar(max) NULL,
    region varchar(8) NULL,
    full_name AS (ssn + ISNULL(email, ''))
)`,
	`CREATE NONCLUSTERED INDEX cc_customers_email_idx ON dbo.cc_customers (email)`,
	`CREATE STATISTICS cc_customers_region_stats ON dbo.cc_customers (region, id)`,
	`CREATE TABLE dbo.cc_orders (
    id int NOT NULL CONSTRAINT cc_orders_pkey PRIMARY KEY,
    customer_id int NOT NULL CONSTRAINT cc_orders_customer_fk REFERENCES dbo.cc_customers (id),
    customer_ssn char(11) NULL CONSTRAINT cc_orders_ssn_fk REFERENCES dbo.cc_customers (ssn),
    amount decimal(10,2) NULL
)`,
	`CREATE TABLE dbo.cc_audit (email varchar(64) NULL, changed_at varchar(30) NULL)`,
	triggerDDL,
	viewDDL,
	`CREATE TABLE dbo.[cc odd "name" [x]]-y] (
    [the "key"] int NOT NULL CONSTRAINT [cc odd pk] PRIMARY KEY,
    [we]]ird col] varchar(20) NULL
)`,
}

// fixtureDrop removes the conformance schema, dependents first.
var fixtureDrop = []string{
	`DROP VIEW IF EXISTS dbo.cc_customer_notes`,
	`DROP TABLE IF EXISTS dbo.cc_orders`,
	`DROP TABLE IF EXISTS dbo.cc_customers`,
	`DROP TABLE IF EXISTS dbo.cc_audit`,
	`DROP TABLE IF EXISTS dbo.[cc odd "name" [x]]-y]`,
}

const triggerDDL = `CREATE TRIGGER dbo.cc_customers_audit ON dbo.cc_customers AFTER UPDATE AS
BEGIN
    SET NOCOUNT ON;
    INSERT INTO dbo.cc_audit (email, changed_at)
    SELECT i.email, CONVERT(varchar(30), SYSDATETIME(), 126) FROM inserted AS i;
END`

const viewDDL = `CREATE VIEW dbo.cc_customer_notes AS SELECT id, notes FROM dbo.cc_customers`

func schemaName(t tableRow) schema.TableName { return schema.TableName{Schema: t.Schema, Name: t.Name} }

// fixtureScript is the fixture as one script with GO separators, as a DBA
// would run it in sqlcmd.
func fixtureScript() string { return strings.Join(fixtureDDL, "\nGO\n") + "\nGO\n" }

// Object IDs as SQL Server might assign them.
const (
	customersID = 901578250
	ordersID    = 933578364
	auditID     = 965578478
	triggerID   = 997578592
	viewID      = 1029578706
	oddID       = 1061578820
)

const latin1 = "SQL_Latin1_General_CP1_CI_AS"

// The catalog rows SQL Server returns for the fixture, per table. The
// definitions are in the normalized form SQL Server stores: bracketed
// names, lower-case functions, IN expanded to ORs; module definitions
// verbatim.
var (
	customersRows = catalogRows{
		Table: tableRow{ObjectID: customersID, Schema: "dbo", Name: "cc_customers", RowCount: 3},
		Columns: []columnRow{
			{ColumnID: 1, Name: "id", TypeName: "int", BaseTypeName: "int", MaxLength: 4, Precision: 10, Identity: true},
			{ColumnID: 2, Name: "ssn", TypeName: "char", BaseTypeName: "char", MaxLength: 11, Collation: latin1},
			{ColumnID: 3, Name: "email", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 64, Collation: latin1, Nullable: true},
			{ColumnID: 4, Name: "status", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 10, Collation: latin1,
				DefaultName: "df", DefaultDef: "('new')"},
			{ColumnID: 5, Name: "notes", TypeName: "nvarchar", BaseTypeName: "nvarchar", MaxLength: -1, Collation: latin1, Nullable: true},
			{ColumnID: 6, Name: "region", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 8, Collation: latin1, Nullable: true},
			{ColumnID: 7, Name: "full_name", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 75, Collation: latin1, Nullable: true,
				Computed: true, ComputedDef: "([ssn]+isnull([email],''))"},
		},
		Indexes: []indexColumnRow{
			{IndexID: 1, Name: "cc_customers_pkey", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true,
				IndexColumnID: 1, KeyOrdinal: 1, Column: "id"},
			{IndexID: 2, Name: "cc_customers_ssn_key", Type: 2, TypeDesc: "NONCLUSTERED", IsUnique: true, IsUniqueConstraint: true,
				IndexColumnID: 1, KeyOrdinal: 1, Column: "ssn"},
			{IndexID: 3, Name: "cc_customers_email_idx", Type: 2, TypeDesc: "NONCLUSTERED",
				IndexColumnID: 1, KeyOrdinal: 1, Column: "email"},
		},
		ForeignKeys: []foreignKeyColumnRow{
			orderCustomerFK,
			orderSSNFK,
		},
		Checks: []checkRow{
			{Name: "cc_customers_status_check", Definition: "([status]='new' OR [status]='vip')", Column: "status"},
		},
		Triggers: []triggerRow{
			{ObjectID: triggerID, Name: "cc_customers_audit", Definition: triggerDDL},
		},
		// A view that is not schema-bound has only an object-level
		// dependency (referenced_minor_id 0).
		Dependencies: []dependencyRow{
			{ReferencingID: viewID, Schema: "dbo", Name: "cc_customer_notes", Type: "V", Definition: viewDDL},
		},
		Statistics: []statisticsRow{{Name: "cc_customers_region_stats", Column: "region"}, {Name: "cc_customers_region_stats", Column: "id"}},
	}

	orderCustomerFK = foreignKeyColumnRow{ObjectID: 1093579960, Name: "cc_orders_customer_fk",
		ParentID: ordersID, ParentSchema: "dbo", ParentTable: "cc_orders", ParentColumn: "customer_id",
		RefID: customersID, RefSchema: "dbo", RefTable: "cc_customers", RefColumn: "id",
		OnDelete: "NO_ACTION", OnUpdate: "NO_ACTION"}
	orderSSNFK = foreignKeyColumnRow{ObjectID: 1109579017, Name: "cc_orders_ssn_fk",
		ParentID: ordersID, ParentSchema: "dbo", ParentTable: "cc_orders", ParentColumn: "customer_ssn",
		RefID: customersID, RefSchema: "dbo", RefTable: "cc_customers", RefColumn: "ssn",
		OnDelete: "NO_ACTION", OnUpdate: "NO_ACTION"}

	ordersRows = catalogRows{
		Table: tableRow{ObjectID: ordersID, Schema: "dbo", Name: "cc_orders", RowCount: 2},
		Columns: []columnRow{
			{ColumnID: 1, Name: "id", TypeName: "int", BaseTypeName: "int", MaxLength: 4, Precision: 10},
			{ColumnID: 2, Name: "customer_id", TypeName: "int", BaseTypeName: "int", MaxLength: 4, Precision: 10},
			{ColumnID: 3, Name: "customer_ssn", TypeName: "char", BaseTypeName: "char", MaxLength: 11, Collation: latin1, Nullable: true},
			{ColumnID: 4, Name: "amount", TypeName: "decimal", BaseTypeName: "decimal", MaxLength: 9, Precision: 10, Scale: 2, Nullable: true},
		},
		Indexes: []indexColumnRow{
			{IndexID: 1, Name: "cc_orders_pkey", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true,
				IndexColumnID: 1, KeyOrdinal: 1, Column: "id"},
		},
		ForeignKeys: []foreignKeyColumnRow{orderCustomerFK, orderSSNFK},
	}

	auditRows = catalogRows{
		Table: tableRow{ObjectID: auditID, Schema: "dbo", Name: "cc_audit"},
		Columns: []columnRow{
			{ColumnID: 1, Name: "email", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 64, Collation: latin1, Nullable: true},
			{ColumnID: 2, Name: "changed_at", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 30, Collation: latin1, Nullable: true},
		},
		// The trigger on cc_customers writes into cc_audit by name.
		Dependencies: []dependencyRow{
			{ReferencingID: triggerID, Schema: "dbo", Name: "cc_customers_audit", Type: "TR", Definition: triggerDDL},
		},
	}

	oddName = schema.TableName{Schema: "dbo", Name: `cc odd "name" [x]-y`}
	oddRows = catalogRows{
		Table: tableRow{ObjectID: oddID, Schema: "dbo", Name: oddName.Name},
		Columns: []columnRow{
			{ColumnID: 1, Name: `the "key"`, TypeName: "int", BaseTypeName: "int", MaxLength: 4, Precision: 10},
			{ColumnID: 2, Name: "we]ird col", TypeName: "varchar", BaseTypeName: "varchar", MaxLength: 20, Collation: latin1, Nullable: true},
		},
		Indexes: []indexColumnRow{
			{IndexID: 1, Name: "cc odd pk", Type: 1, TypeDesc: "CLUSTERED", IsUnique: true, IsPrimaryKey: true,
				IndexColumnID: 1, KeyOrdinal: 1, Column: `the "key"`},
		},
	}
)
