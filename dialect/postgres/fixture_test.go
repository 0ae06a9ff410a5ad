package postgres_test

// conformanceFixture is the conformance schema of dialecttest in
// PostgreSQL's DDL, in order. The suite drops its tables before and after
// it runs; the trigger function is replaced, so the fixture runs again on
// the same database.
var conformanceFixture = []string{
	`CREATE TABLE cc_customers (
		id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		ssn char(11) NOT NULL CONSTRAINT cc_customers_ssn_key UNIQUE,
		email varchar(64) NULL,
		status varchar(10) NOT NULL DEFAULT 'new'
			CONSTRAINT cc_customers_status_check CHECK (status IN ('new', 'vip')),
		notes text NULL,
		region varchar(8) NULL,
		full_name text GENERATED ALWAYS AS (ssn || coalesce(email, '')) STORED
	)`,
	`CREATE INDEX cc_customers_email_idx ON cc_customers (email)`,
	`CREATE TABLE cc_orders (
		id int PRIMARY KEY,
		customer_id int NOT NULL CONSTRAINT cc_orders_customer_fk REFERENCES cc_customers (id),
		customer_ssn char(11) NULL CONSTRAINT cc_orders_ssn_fk REFERENCES cc_customers (ssn),
		amount numeric(10,2)
	)`,
	`CREATE TABLE cc_audit (email varchar(64), changed_at varchar(30))`,
	`CREATE OR REPLACE FUNCTION cc_customers_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		-- keeps the old address for the help desk
		INSERT INTO cc_audit (email, changed_at) VALUES (NEW.email, now()::text);
		RETURN NEW;
	END
	$$`,
	`CREATE TRIGGER cc_customers_audit AFTER UPDATE ON cc_customers
		FOR EACH ROW EXECUTE FUNCTION cc_customers_audit_fn()`,
	`CREATE VIEW cc_customer_notes AS SELECT id, notes FROM cc_customers`,
	`CREATE TABLE "cc odd ""name"" [x]-y" (
		"the ""key""" int PRIMARY KEY,
		"we]ird col" varchar(20)
	)`,
}
