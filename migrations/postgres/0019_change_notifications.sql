-- Every replica keeps what gates a call (the principal behind an API key, grant or machine
-- client; the organisation's redaction policy, time zone and DPoP rule) in memory, and drops it
-- when one of these notifications arrives. They are sent in the writing transaction, so they are
-- delivered exactly when the change commits, whoever writes it. The payload names the
-- organisation (its id column is the trigger's argument), or '*' when the row spans every
-- organisation (a person, an OAuth client).
CREATE FUNCTION clari_mcp_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org TEXT;
BEGIN
    IF TG_ARGV[0] = '*' THEN
        org := '*';
    ELSIF TG_OP = 'DELETE' THEN
        org := to_jsonb(OLD) ->> TG_ARGV[0];
    ELSE
        org := to_jsonb(NEW) ->> TG_ARGV[0];
    END IF;
    IF org = '*' OR org IS NULL THEN
        PERFORM pg_notify('clari_mcp_changes', '*');
    ELSE
        PERFORM pg_notify('clari_mcp_changes', 'org ' || org);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER organizations_changed
    AFTER UPDATE OF disabled, require_dpop, redaction, time_zone OR DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('id');
CREATE TRIGGER memberships_changed
    AFTER UPDATE OF disabled, role OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('organization_id');
CREATE TRIGGER users_changed
    AFTER UPDATE OF disabled OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('*');
CREATE TRIGGER grants_changed
    AFTER UPDATE OF revoked_at, scope, client_id, user_id OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('organization_id');
CREATE TRIGGER api_keys_changed
    AFTER UPDATE OF revoked_at, expires_at, scopes OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('organization_id');
CREATE TRIGGER service_clients_changed
    AFTER UPDATE OF revoked_at, scopes OR DELETE ON service_clients
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('organization_id');
CREATE TRIGGER oauth_clients_changed
    AFTER UPDATE OF disabled OR DELETE ON oauth_clients
    FOR EACH ROW EXECUTE FUNCTION clari_mcp_notify_change('*');
