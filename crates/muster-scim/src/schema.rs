//! The schema model of RFC 7643 §2 and §7: attribute definitions with
//! their characteristics, schemas named by URN, the built-in User,
//! Enterprise User and Group schemas (§4.1, §4.3, §4.2), extension schemas
//! built at run time, and the set of schemas one resource type uses
//! ([`ResourceSchemas`]) with case-insensitive, URN-aware lookup (§2.1).
use crate::path::AttrPath;
use serde::Serialize;
use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The schema of `/Schemas` resources (RFC 7643 §7).
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The extension the server will use for a tenant's own attributes.
pub const MUSTER_USER_EXTENSION: &str = "urn:muster:params:scim:schemas:extension:2.0:User";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

/// RFC 7643 §2.2 "mutability".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// RFC 7643 §2.2 "returned".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// RFC 7643 §2.2 "uniqueness".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute definition (RFC 7643 §2.2, §7 "attributes"), serialised
/// as in the `/Schemas` representation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    pub multi_valued: bool,
    pub description: String,
    pub required: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    /// An attribute with the defaults of RFC 7643 §2.2 (single-valued,
    /// optional, not case-exact, readWrite, returned by default, not unique).
    pub fn new(name: &str, attr_type: AttrType) -> Self {
        Attribute {
            name: name.to_string(),
            attr_type,
            multi_valued: false,
            description: String::new(),
            required: false,
            canonical_values: Vec::new(),
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, AttrType::String)
    }
    pub fn complex(name: &str, subs: Vec<Attribute>) -> Self {
        let mut a = Self::new(name, AttrType::Complex);
        a.sub_attributes = subs;
        a
    }
    pub fn reference(name: &str, types: &[&str]) -> Self {
        let mut a = Self::new(name, AttrType::Reference);
        a.reference_types = types.iter().map(|s| s.to_string()).collect();
        a.case_exact = true;
        a
    }
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    pub fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    /// A sub-attribute by name, ignoring case (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether the value of this attribute can never be written by a
    /// client.
    pub fn is_read_only(&self) -> bool {
        self.mutability == Mutability::ReadOnly
    }
}

/// A schema (RFC 7643 §7): URN id, name, description and attributes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub description: String,
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// A top-level attribute by name, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `/Schemas/{id}` resource body (RFC 7643 §7, §8.7.1) without
    /// `meta`, which the server adds with its own location.
    pub fn to_resource(&self) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes,
        })
    }
}

fn multi_complex(name: &str, type_values: &[&str]) -> Attribute {
    Attribute::complex(
        name,
        vec![
            Attribute::string("value"),
            Attribute::string("display"),
            Attribute::string("type").canonical(type_values),
            Attribute::new("primary", AttrType::Boolean),
        ],
    )
    .multi()
}

/// The core User schema (RFC 7643 §4.1), limited to the attributes that
/// matter for provisioning. `password` is not supported: the gateway
/// holds no credentials; `x509Certificates`, `ims`, `photos` and
/// `entitlements` are left out for the same reason.
pub fn user_schema() -> Schema {
    let s = Attribute::string;
    let name = Attribute::complex(
        "name",
        vec![
            s("formatted"),
            s("familyName"),
            s("givenName"),
            s("middleName"),
            s("honorificPrefix"),
            s("honorificSuffix"),
        ],
    );
    let addresses = Attribute::complex(
        "addresses",
        vec![
            s("formatted"),
            s("streetAddress"),
            s("locality"),
            s("region"),
            s("postalCode"),
            s("country"),
            s("type").canonical(&["work", "home", "other"]),
            Attribute::new("primary", AttrType::Boolean),
        ],
    )
    .multi();
    let ro = Mutability::ReadOnly;
    let groups = Attribute::complex(
        "groups",
        vec![
            s("value").case_exact().mutability(ro),
            Attribute::reference("$ref", &["User", "Group"]).mutability(ro),
            s("display").mutability(ro),
            s("type").canonical(&["direct", "indirect"]).mutability(ro),
        ],
    )
    .multi()
    .mutability(ro);
    Schema {
        id: USER_SCHEMA.to_string(),
        name: "User".to_string(),
        description: "User Account".to_string(),
        attributes: vec![
            s("userName").required().unique(Uniqueness::Server),
            name,
            s("displayName"),
            s("nickName"),
            Attribute::reference("profileUrl", &["external"]),
            s("title"),
            s("userType"),
            s("preferredLanguage"),
            s("locale"),
            s("timezone"),
            Attribute::new("active", AttrType::Boolean),
            multi_complex("emails", &["work", "home", "other"]),
            multi_complex(
                "phoneNumbers",
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            addresses,
            groups,
            multi_complex("roles", &[]),
        ],
    }
}

/// The Enterprise User extension (RFC 7643 §4.3).
pub fn enterprise_user_schema() -> Schema {
    let s = Attribute::string;
    Schema {
        id: ENTERPRISE_USER_SCHEMA.to_string(),
        name: "EnterpriseUser".to_string(),
        description: "Enterprise User".to_string(),
        attributes: vec![
            s("employeeNumber"),
            s("costCenter"),
            s("organization"),
            s("division"),
            s("department"),
            Attribute::complex(
                "manager",
                vec![
                    s("value").case_exact(),
                    Attribute::reference("$ref", &["User"]),
                    s("displayName").mutability(Mutability::ReadOnly),
                ],
            ),
        ],
    }
}

/// The core Group schema (RFC 7643 §4.2, §8.7.1). Member values are
/// resource ids and compared case-exactly, as `id` is (RFC 7643 §3.1).
pub fn group_schema() -> Schema {
    let im = Mutability::Immutable;
    Schema {
        id: GROUP_SCHEMA.to_string(),
        name: "Group".to_string(),
        description: "Group".to_string(),
        attributes: vec![
            Attribute::string("displayName").required(),
            Attribute::complex(
                "members",
                vec![
                    Attribute::string("value").case_exact().mutability(im),
                    Attribute::reference("$ref", &["User", "Group"]).mutability(im),
                    Attribute::string("display").mutability(im),
                    Attribute::string("type")
                        .canonical(&["User", "Group"])
                        .mutability(im),
                ],
            )
            .multi(),
        ],
    }
}

/// One custom attribute of a run-time extension: name, type, multi-valued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAttr {
    pub name: String,
    pub attr_type: AttrType,
    pub multi_valued: bool,
}

/// An extension schema built at run time from a tenant's own attributes,
/// under the URN the caller gives (the server uses
/// [`MUSTER_USER_EXTENSION`]). Names must be `ATTRNAME`s (RFC 7643 §2.1)
/// and distinct ignoring case; `complex` is refused (no sub-attributes
/// can be given this way).
pub fn custom_extension(
    urn: &str,
    name: &str,
    attrs: &[CustomAttr],
) -> Result<Schema, crate::ScimError> {
    if !urn.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return Err(crate::ScimError::invalid_value(
            "an extension schema id must be a URN",
        ));
    }
    let mut out: Vec<Attribute> = Vec::new();
    for (i, a) in attrs.iter().enumerate() {
        if !crate::path::is_attr_name(&a.name) || a.name.starts_with('$') {
            return Err(crate::ScimError::invalid_value(format!(
                "custom attribute {i} has no valid attribute name"
            )));
        }
        if a.attr_type == AttrType::Complex {
            return Err(crate::ScimError::invalid_value(format!(
                "custom attribute {} cannot be complex",
                a.name
            )));
        }
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&a.name)) {
            return Err(crate::ScimError::invalid_value(format!(
                "custom attribute {} is defined twice",
                a.name
            )));
        }
        let mut attr = Attribute::new(&a.name, a.attr_type);
        attr.multi_valued = a.multi_valued;
        out.push(attr);
    }
    Ok(Schema {
        id: urn.to_string(),
        name: name.to_string(),
        description: String::new(),
        attributes: out,
    })
}

/// The common attributes of every resource (RFC 7643 §3.1): `id`,
/// `externalId`, `meta`. They belong to no schema and are not listed in
/// `/Schemas`; [`common_attributes_json`] gives their definitions.
pub fn common_attributes() -> Vec<Attribute> {
    let ro = Mutability::ReadOnly;
    vec![
        Attribute::string("id")
            .case_exact()
            .mutability(ro)
            .returned(Returned::Always)
            .unique(Uniqueness::Server),
        Attribute::string("externalId").case_exact(),
        Attribute::complex(
            "meta",
            vec![
                Attribute::string("resourceType")
                    .case_exact()
                    .mutability(ro),
                Attribute::new("created", AttrType::DateTime).mutability(ro),
                Attribute::new("lastModified", AttrType::DateTime).mutability(ro),
                Attribute::reference("location", &["uri"]).mutability(ro),
                Attribute::string("version").case_exact().mutability(ro),
            ],
        )
        .mutability(ro),
    ]
}

/// The common attributes serialised as `/Schemas` attribute definitions.
pub fn common_attributes_json() -> Value {
    serde_json::to_value(common_attributes()).unwrap_or(Value::Null)
}

/// The `schemas` attribute every resource carries (RFC 7643 §3): a
/// multi-valued list of URIs, compared without case, maintained by the
/// PATCH engine itself.
fn schemas_attribute() -> Attribute {
    let mut a = Attribute::reference("schemas", &["uri"])
        .multi()
        .required()
        .returned(Returned::Always);
    // Schema URNs compare without case (RFC 8141 §3.1 for the NID; the
    // RFC 7644 §3.4.2.2 example `schemas eq "urn:..."` relies on it).
    a.case_exact = false;
    a
}

/// The schemas of one resource type: its core schema and its extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSchemas {
    pub core: Schema,
    pub extensions: Vec<Schema>,
    common: Vec<Attribute>,
    schemas_attr: Attribute,
}

/// What a path names in a [`ResourceSchemas`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved<'a> {
    /// An attribute (and maybe a sub-attribute of it); `extension` is the
    /// extension schema whose object holds it, `None` for the core schema
    /// and the common attributes.
    Attr {
        extension: Option<&'a Schema>,
        attr: &'a Attribute,
        sub: Option<&'a Attribute>,
    },
    /// A whole extension schema, named by its URN alone.
    Extension(&'a Schema),
}

impl ResourceSchemas {
    pub fn new(core: Schema, extensions: Vec<Schema>) -> Self {
        ResourceSchemas {
            core,
            extensions,
            common: common_attributes(),
            schemas_attr: schemas_attribute(),
        }
    }

    /// User with the Enterprise extension.
    pub fn user() -> Self {
        Self::new(user_schema(), vec![enterprise_user_schema()])
    }

    /// Group.
    pub fn group() -> Self {
        Self::new(group_schema(), Vec::new())
    }

    /// The same with one more extension (e.g. a [`custom_extension`]).
    pub fn with_extension(mut self, ext: Schema) -> Self {
        self.extensions.push(ext);
        self
    }

    /// An extension by URN, ignoring case.
    pub fn extension(&self, urn: &str) -> Option<&Schema> {
        self.extensions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether the URN is the core schema's.
    pub fn is_core(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn)
    }

    /// Every schema id, core first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.core.id.as_str()).chain(self.extensions.iter().map(|s| s.id.as_str()))
    }

    /// The attributes at the top of the resource: common, `schemas`, core.
    pub fn top_level(&self) -> impl Iterator<Item = &Attribute> {
        self.common
            .iter()
            .chain(std::iter::once(&self.schemas_attr))
            .chain(self.core.attributes.iter())
    }

    fn top_attribute(&self, name: &str) -> Option<&Attribute> {
        self.top_level().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Resolves a path (RFC 7644 §3.10): without a URN it names a common
    /// or core attribute; with the core URN the same; with an extension's
    /// URN an attribute of that extension. A URN-looking path whose whole
    /// text is an extension's id (`urn:...:enterprise:2.0:User`) names the
    /// extension itself.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        let (extension, attr) = match &path.urn {
            None => (None, self.top_attribute(&path.name)?),
            Some(urn) if self.is_core(urn) => (None, self.core.attribute(&path.name)?),
            Some(urn) => match self.extension(urn) {
                Some(ext) => (Some(ext), ext.attribute(&path.name)?),
                None => {
                    if path.sub.is_none() {
                        let whole = format!("{urn}:{}", path.name);
                        return self.extension(&whole).map(Resolved::Extension);
                    }
                    return None;
                }
            },
        };
        let sub = match &path.sub {
            None => None,
            Some(s) => Some(attr.sub_attribute(s)?),
        };
        Some(Resolved::Attr {
            extension,
            attr,
            sub,
        })
    }

    /// Parses and resolves a path string; `None` when it names nothing
    /// (the text may also be an extension's URN alone).
    pub fn find(&self, path: &str) -> Option<Resolved<'_>> {
        if let Some(ext) = self.extension(path) {
            return Some(Resolved::Extension(ext));
        }
        AttrPath::parse(path).ok().and_then(|p| self.resolve(&p))
    }

    /// The `/Schemas` resources of this resource type, core first.
    pub fn to_resources(&self) -> Vec<Value> {
        std::iter::once(&self.core)
            .chain(self.extensions.iter())
            .map(Schema::to_resource)
            .collect()
    }
}

/// A member of an object by name, ignoring case (RFC 7643 §2.1): the key
/// as stored and its value.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_resolves_urn_qualified_names() {
        let s = ResourceSchemas::user();
        let Some(Resolved::Attr {
            extension,
            attr,
            sub,
        }) = s.find("USERNAME")
        else {
            panic!("userName not found");
        };
        assert!(extension.is_none() && sub.is_none());
        assert_eq!(attr.name, "userName");

        let Some(Resolved::Attr {
            extension, attr, ..
        }) = s.find("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
        else {
            panic!("department not found");
        };
        assert_eq!(extension.unwrap().id, ENTERPRISE_USER_SCHEMA);
        assert_eq!(attr.name, "department");

        let Some(Resolved::Attr { attr, sub, .. }) =
            s.find("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:MANAGER.value")
        else {
            panic!("manager.value not found");
        };
        assert_eq!(
            (attr.name.as_str(), sub.unwrap().name.as_str()),
            ("manager", "value")
        );

        assert!(matches!(
            s.find("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
            Some(Resolved::Extension(_))
        ));
        assert!(matches!(
            s.find("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            Some(Resolved::Attr {
                extension: None,
                ..
            })
        ));
        assert!(
            s.find("department").is_none(),
            "extension attributes need their URN"
        );
        assert!(s.find("password").is_none());
        assert!(s.find("meta.lastModified").is_some());
        assert!(s.find("emails.bogus").is_none());
    }

    #[test]
    fn a_schema_serialises_as_its_schemas_resource() {
        let v = enterprise_user_schema().to_resource();
        assert_eq!(v["schemas"], json!([SCHEMA_SCHEMA]));
        assert_eq!(v["id"], ENTERPRISE_USER_SCHEMA);
        assert!(v.get("meta").is_none());
        let manager = &v["attributes"][5];
        assert_eq!(manager["name"], "manager");
        assert_eq!(manager["type"], "complex");
        assert_eq!(manager["multiValued"], false);
        assert_eq!(manager["subAttributes"][1]["name"], "$ref");
        assert_eq!(
            manager["subAttributes"][1]["referenceTypes"],
            json!(["User"])
        );
        assert_eq!(manager["subAttributes"][2]["mutability"], "readOnly");
        let user = user_schema().to_resource();
        assert_eq!(user["attributes"][0]["uniqueness"], "server");
        assert_eq!(user["attributes"][0]["required"], true);
        let emails = user_schema().attribute("EMAILS").unwrap().clone();
        assert_eq!(
            serde_json::to_value(&emails).unwrap()["subAttributes"][2]["canonicalValues"],
            json!(["work", "home", "other"])
        );
        assert!(user_schema().attribute("password").is_none());
    }

    #[test]
    fn the_common_attributes_serialise_with_their_characteristics() {
        let v = common_attributes_json();
        assert_eq!(v[0]["name"], "id");
        assert_eq!(v[0]["returned"], "always");
        assert_eq!(v[0]["mutability"], "readOnly");
        assert_eq!(v[0]["caseExact"], true);
        assert_eq!(v[1]["name"], "externalId");
        assert_eq!(v[2]["subAttributes"][1]["type"], "dateTime");
    }

    #[test]
    fn a_custom_extension_is_built_from_names_and_types() {
        let ext = custom_extension(
            MUSTER_USER_EXTENSION,
            "MusterUser",
            &[
                CustomAttr {
                    name: "badgeId".into(),
                    attr_type: AttrType::String,
                    multi_valued: false,
                },
                CustomAttr {
                    name: "floors".into(),
                    attr_type: AttrType::Integer,
                    multi_valued: true,
                },
            ],
        )
        .unwrap();
        let s = ResourceSchemas::user().with_extension(ext);
        let Some(Resolved::Attr { attr, .. }) =
            s.find("urn:muster:params:scim:schemas:extension:2.0:User:FLOORS")
        else {
            panic!("floors not found");
        };
        assert!(attr.multi_valued);
        assert_eq!(attr.attr_type, AttrType::Integer);
        let dup = custom_extension(
            MUSTER_USER_EXTENSION,
            "x",
            &[
                CustomAttr {
                    name: "a".into(),
                    attr_type: AttrType::String,
                    multi_valued: false,
                },
                CustomAttr {
                    name: "A".into(),
                    attr_type: AttrType::String,
                    multi_valued: false,
                },
            ],
        );
        assert!(dup.is_err());
        assert!(custom_extension("muster:x", "x", &[]).is_err());
    }
}
