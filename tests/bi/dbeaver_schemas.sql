-- DBeaver, PostgreSQL plugin: PostgreDatabase.SchemaCache.
-- What the tool sends to list objects, replayed by tests/tests/bi_tools.rs.
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname
