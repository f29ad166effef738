#!/usr/bin/env bash
# Backup and restore, as docs/src/operations.md tells an operator to do it, on both stores:
# make an organisation with a sealed Clari key, a user, an API key and audit events; back up
# (SQLite: the online backup API, plus the vault key file; PostgreSQL: pg_dump); lose the data;
# restore; then prove the restored server is the same one: the same organisations and keys, an
# audit trail that verifies, and every sealed secret still opens (a vault rotation to a new key
# must open each one to reseal it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bin clari-mcp
BIN="$PWD/target/debug/clari-mcp"
WORK="$(mktemp -d)"
PG_DB=""
cleanup() {
  if [ -n "$PG_DB" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists "$PG_DB" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
ok() { echo "  ok   $*"; }

# Runs clari-mcp with only the settings of the store under test.
cm() { env -i PATH="$PATH" RUST_LOG=error "${STORE[@]}" "$BIN" "$@"; }

populate() {
  cm org create --name "Acme Restore" >/dev/null
  echo "clari-key-0123456789abcdef" | cm org set-clari-key --org "Acme Restore" >/dev/null
  printf 'a-long-enough-password-1\n' | cm user create --org "Acme Restore" --email ava@acme.test --role admin >/dev/null
  cm api-key create --email ava@acme.test --scopes clari:read --name restore-test >/dev/null 2>&1
  cm org list --json > "$WORK/orgs.before"
  cm api-key list --json > "$WORK/keys.before"
}

verify() {
  local what="$1"
  cm org list --json > "$WORK/orgs.after"
  cm api-key list --json > "$WORK/keys.after"
  cmp -s "$WORK/orgs.before" "$WORK/orgs.after" || { echo "FAIL $what: organisations differ"; exit 1; }
  cmp -s "$WORK/keys.before" "$WORK/keys.after" || { echo "FAIL $what: API keys differ"; exit 1; }
  ok "$what: the same organisations and API keys"
  cm audit verify >/dev/null || { echo "FAIL $what: the audit trail does not verify"; exit 1; }
  ok "$what: the audit trail verifies"
  # Rotating to a brand-new vault key reseals every secret, which opens each with the old one.
  out="$(rotate_vault)"
  echo "$out" | grep -q "re-encrypted 1 Clari credential(s), 1 signing key(s)" || { echo "FAIL $what: $out"; exit 1; }
  ok "$what: every sealed secret opens with the restored vault key ($out)"
}

echo "== SQLite: online backup of the database file and the vault key"
DATA="$WORK/sqlite"
STORE=(CLARI_MCP_DATA_DIR="$DATA" CLARI_MCP_DATABASE_URL="sqlite://$DATA/clari-mcp.db")
populate
mkdir -p "$WORK/backup"
python3 - "$DATA/clari-mcp.db" "$WORK/backup/clari-mcp.db" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)
PY
cp -p "$DATA/vault.key" "$WORK/backup/vault.key"
rm -rf "$DATA"
ok "backed up, then the data directory was deleted"
rotate_vault() { cm keys rotate-vault --add-key 2>/dev/null; }
mkdir -m 700 "$DATA"
install -m 600 "$WORK/backup/clari-mcp.db" "$DATA/clari-mcp.db"
install -m 600 "$WORK/backup/vault.key" "$DATA/vault.key"
verify "SQLite restore"

echo "== PostgreSQL: pg_dump, drop, pg_restore"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL PostgreSQL is not reachable"; exit 1; fi
  echo "  skip PostgreSQL is not reachable on 127.0.0.1:5432"; exit 0
fi
PG_DB="clari_mcp_restore_$$"
createdb -h 127.0.0.1 -U postgres "$PG_DB"
VAULT_KEY="$(cm keys new-vault-key)"
STORE=(CLARI_MCP_DATA_DIR="$WORK/pg" CLARI_MCP_VAULT_KEYS="$VAULT_KEY"
  CLARI_MCP_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$PG_DB")
populate
pg_dump -h 127.0.0.1 -U postgres -Fc -f "$WORK/backup/clari-mcp.dump" "$PG_DB"
dropdb -h 127.0.0.1 -U postgres "$PG_DB"
ok "dumped, then the database was dropped"
createdb -h 127.0.0.1 -U postgres "$PG_DB"
pg_restore -h 127.0.0.1 -U postgres --no-owner -d "$PG_DB" "$WORK/backup/clari-mcp.dump"
NEW_KEY="$(cm keys new-vault-key)"
rotate_vault() {
  env -i PATH="$PATH" RUST_LOG=error CLARI_MCP_DATA_DIR="$WORK/pg" CLARI_MCP_VAULT_KEYS="$NEW_KEY,$VAULT_KEY" \
    CLARI_MCP_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$PG_DB" "$BIN" keys rotate-vault
}
verify "PostgreSQL restore"
echo "backup and restore: passed"
