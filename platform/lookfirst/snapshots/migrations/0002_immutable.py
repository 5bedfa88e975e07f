"""Snapshots are immutable in the database itself: UPDATE and DELETE raise, whoever sends them.

Row triggers (not statement ones), so TRUNCATE, which test teardown uses to empty tables, still works.
The error is SQLSTATE 23001 (restrict_violation), which Django raises as IntegrityError.
"""
from django.db import migrations

TABLES = ("snapshots_snapshot", "snapshots_snapshotitem")

FUNCTION = """
CREATE OR REPLACE FUNCTION lookfirst_snapshot_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'snapshots are immutable: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
"""

forward = [FUNCTION] + [
    f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
    f"FOR EACH ROW EXECUTE FUNCTION lookfirst_snapshot_immutable();"
    for table in TABLES
]
backward = [f"DROP TRIGGER IF EXISTS {table}_immutable ON {table};" for table in TABLES] + [
    "DROP FUNCTION IF EXISTS lookfirst_snapshot_immutable();"
]


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0001_initial")]
    operations = [migrations.RunSQL(forward, backward)]
