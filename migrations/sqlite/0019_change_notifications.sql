-- Nothing to change in the schema: on SQLite the writer marks its changes in the file beside the
-- database (`<database>-changes`), which is not part of it. The number is kept in step with
-- PostgreSQL's migrations, which add the change notifications there.
SELECT 1;
