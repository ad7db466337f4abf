//! Discovery documents (RFC 7644 §4): the ServiceProviderConfig, the User resource type and
//! the User schema, limited to what we support and store.

use super::list::{list_response, MAX_RESULTS};
use super::user::{trim_base, USER_SCHEMA};
use serde_json::{json, Value};

const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bearer token in the Authorization header",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", trim_base(base_url)),
        },
    })
}

/// The User resource type, for GET /ResourceTypes/User.
pub fn user_resource_type(base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER_SCHEMA,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/User", trim_base(base_url)),
        },
    })
}

pub fn resource_types(base_url: &str) -> Value {
    list_response(vec![user_resource_type(base_url)], 1, 1, 1)
}

fn attribute(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    })
}

/// Sets one field of an attribute definition made by `attribute`.
fn with(mut attr: Value, key: &str, value: Value) -> Value {
    if let Some(o) = attr.as_object_mut() {
        o.insert(key.into(), value);
    }
    attr
}

/// The core User schema, limited to the attributes we store, for GET /Schemas/{id}.
pub fn user_schema() -> Value {
    let user_name = with(
        with(
            attribute(
                "userName",
                "string",
                "Unique identifier for the user, used to sign in",
            ),
            "required",
            json!(true),
        ),
        "uniqueness",
        json!("server"),
    );
    let external_id = with(
        attribute(
            "externalId",
            "string",
            "The identifier the provisioning client uses",
        ),
        "caseExact",
        json!(true),
    );
    let name = with(
        attribute("name", "complex", "The user's name"),
        "subAttributes",
        json!([
            attribute("givenName", "string", "Given name"),
            attribute("familyName", "string", "Family name"),
        ]),
    );
    let email_type = with(
        attribute("type", "string", "The kind of email; only work is kept"),
        "canonicalValues",
        json!(["work"]),
    );
    let emails = with(
        with(
            attribute("emails", "complex", "Email addresses; only one is kept"),
            "multiValued",
            json!(true),
        ),
        "subAttributes",
        json!([
            attribute("value", "string", "Email address"),
            email_type,
            attribute("primary", "boolean", "Whether this is the primary email"),
        ]),
    );
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            user_name,
            external_id,
            attribute("active", "boolean", "Whether the user may use the service"),
            name,
            attribute("displayName", "string", "Name for display"),
            emails,
        ],
        "meta": {"resourceType": "Schema"},
    })
}

pub fn schemas() -> Value {
    list_response(vec![user_schema()], 1, 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::protocol::list::LIST_RESPONSE_SCHEMA;

    #[test]
    fn discovery_documents() {
        let spc = service_provider_config("https://h/scim/v2");
        assert_eq!(spc["patch"]["supported"], json!(true));
        assert_eq!(spc["bulk"]["supported"], json!(false));
        assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(spc["changePassword"]["supported"], json!(false));
        assert_eq!(spc["sort"]["supported"], json!(false));
        assert_eq!(spc["etag"]["supported"], json!(false));
        assert_eq!(
            spc["authenticationSchemes"][0]["type"],
            json!("oauthbearertoken")
        );
        assert_eq!(
            spc["meta"]["location"],
            json!("https://h/scim/v2/ServiceProviderConfig")
        );

        let rt = resource_types("https://h/scim/v2/");
        assert_eq!(rt["schemas"], json!([LIST_RESPONSE_SCHEMA]));
        assert_eq!(rt["totalResults"], json!(1));
        let user = &rt["Resources"][0];
        assert_eq!(user["endpoint"], json!("/Users"));
        assert_eq!(user["schema"], json!(USER_SCHEMA));
        assert_eq!(
            user["meta"]["location"],
            json!("https://h/scim/v2/ResourceTypes/User")
        );

        let s = schemas();
        assert_eq!(s["totalResults"], json!(1));
        let schema = &s["Resources"][0];
        assert_eq!(schema["id"], json!(USER_SCHEMA));
        let attrs = schema["attributes"].as_array().unwrap();
        let names: Vec<&str> = attrs.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "userName",
                "externalId",
                "active",
                "name",
                "displayName",
                "emails"
            ]
        );
        assert_eq!(attrs[0]["required"], json!(true));
        assert_eq!(attrs[0]["uniqueness"], json!("server"));
        assert_eq!(attrs[1]["caseExact"], json!(true));
        assert_eq!(attrs[5]["multiValued"], json!(true));
        let name_subs: Vec<&str> = attrs[3]["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(name_subs, ["givenName", "familyName"]);
    }
}
