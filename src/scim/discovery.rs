//! What the SCIM service says about itself (RFC 7643 §5–§7, RFC 7644 §4): the service provider
//! configuration, the one resource type (User) and its schema, listing exactly the attributes
//! this server keeps, so a client that generates values from the schema gets them back.

use serde_json::{Value, json};

use super::resource::USER_SCHEMA;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Most resources one list answer holds (`filter.maxResults`).
pub const MAX_RESULTS: usize = 200;

/// RFC 7643 §5.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A SCIM token an organisation admin created for this organisation",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

/// RFC 7643 §6.
pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person of the organisation",
        "schema": USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

fn attr(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false, "description": description,
        "required": false, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none"
    })
}

/// RFC 7643 §7, for the attributes of §4.1 this server keeps.
pub fn user_schema(base: &str) -> Value {
    let mut user_name = attr(
        "userName",
        "string",
        "Unique identifier of the user: usually the e-mail address",
    );
    user_name["required"] = json!(true);
    user_name["uniqueness"] = json!("server");
    let mut name = attr("name", "complex", "The components of the user's name");
    name["subAttributes"] = json!([
        attr("formatted", "string", "The full name"),
        attr("familyName", "string", "The family name"),
        attr("givenName", "string", "The given name"),
    ]);
    let mut emails = attr("emails", "complex", "E-mail addresses of the user");
    emails["multiValued"] = json!(true);
    let mut email_type = attr("type", "string", "work, home or other");
    email_type["canonicalValues"] = json!(["work", "home", "other"]);
    emails["subAttributes"] = json!([
        attr("value", "string", "The address"),
        email_type,
        attr("primary", "boolean", "The primary address"),
    ]);
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            user_name,
            name,
            attr("displayName", "string", "The name shown for the user"),
            attr("active", "boolean", "false suspends the person in this organisation and revokes what they hold"),
            emails,
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
    })
}
