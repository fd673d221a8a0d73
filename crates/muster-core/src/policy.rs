//! Permissions, the built-in roles that group them, and write policies: what
//! a principal may do, and which attributes and roles a client may write.
use crate::person::Incoming;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    ImportsCreate,
    ImportsRead,
    PeopleWrite,
    PeopleRead,
    MappingsWrite,
    KeysAdmin,
    ClientsAdmin,
    SubscriptionsAdmin,
    AuditRead,
    TenantAdmin,
    /// Reading and writing people and groups through the SCIM door
    /// (docs/scim.md): an identity provider provisions what it reads.
    ScimProvision,
    /// Creating and managing the webhook subscriptions the client owns,
    /// within its read policy (docs/events.md#nodes-that-manage-their-own-subscription).
    SubscriptionsOwn,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::ImportsCreate,
        Permission::ImportsRead,
        Permission::PeopleWrite,
        Permission::PeopleRead,
        Permission::MappingsWrite,
        Permission::KeysAdmin,
        Permission::ClientsAdmin,
        Permission::SubscriptionsAdmin,
        Permission::AuditRead,
        Permission::TenantAdmin,
        Permission::ScimProvision,
        Permission::SubscriptionsOwn,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ImportsCreate => "imports:create",
            Permission::ImportsRead => "imports:read",
            Permission::PeopleWrite => "people:write",
            Permission::PeopleRead => "people:read",
            Permission::MappingsWrite => "mappings:write",
            Permission::KeysAdmin => "keys:admin",
            Permission::ClientsAdmin => "clients:admin",
            Permission::SubscriptionsAdmin => "subscriptions:admin",
            Permission::AuditRead => "audit:read",
            Permission::SubscriptionsOwn => "subscriptions:own",
            Permission::TenantAdmin => "tenant:admin",
            Permission::ScimProvision => "scim:provision",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Permissions = BTreeSet<Permission>;

/// The built-in roles (docs/people.md#roles-and-permissions). `importer` can submit files and follow its
/// own imports, and nothing else: it never reads decrypted data.
pub const BUILTIN_ROLES: [&str; 7] = [
    "importer", "syncer", "reader", "node", "auditor", "scim", "admin",
];

pub fn role_permissions(role: &str) -> Option<Permissions> {
    use Permission::*;
    let list: &[Permission] = match role {
        "importer" => &[ImportsCreate, ImportsRead],
        "syncer" => &[ImportsCreate, ImportsRead, PeopleWrite],
        "reader" => &[PeopleRead],
        "node" => &[PeopleRead, SubscriptionsOwn],
        "auditor" => &[AuditRead, ImportsRead],
        "scim" => &[ScimProvision],
        "admin" => &Permission::ALL,
        _ => return None,
    };
    Some(list.iter().copied().collect())
}

/// Parses an OAuth `scope` (space-separated permission names).
pub fn parse_scope(scope: &str) -> Result<Permissions, String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| Permission::parse(s).ok_or_else(|| s.to_owned()))
        .collect()
}

pub fn scope_string(p: &Permissions) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
}

/// What a client may write: attribute names and role names, `*` for all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WritePolicy {
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What a client's uploads must be (docs/intake.md#intake-policies): encrypted to one of the
/// tenant's keys, and OpenPGP-signed by a registered sender key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IntakePolicy {
    #[serde(default)]
    pub require_encryption: bool,
    /// The id of a sender-verification key of the tenant.
    #[serde(default)]
    pub require_signed_by: Option<String>,
}

/// What a client may read of people (docs/people.md#read-policies): the
/// attributes its person reads, change feed and own subscriptions carry
/// (`*`: all; `roles` for the roles), and the feed's event kinds (empty:
/// all). A client without one reads everything its permissions allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadPolicy {
    pub attributes: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        Self {
            attributes: vec!["*".into()],
            events: Vec::new(),
        }
    }
}

impl ReadPolicy {
    pub fn all_attributes(&self) -> bool {
        self.attributes.iter().any(|a| a == "*")
    }
    pub fn may_read(&self, attribute: &str) -> bool {
        self.all_attributes() || self.attributes.iter().any(|a| a == attribute)
    }
    pub fn may_see(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
    /// The first of `attributes` this policy does not allow (`*` is
    /// allowed only by a policy of all attributes).
    pub fn first_unreadable<'a>(&self, attributes: &'a [String]) -> Option<&'a str> {
        attributes
            .iter()
            .find(|a| !self.may_read(a))
            .map(String::as_str)
    }
    /// `wanted` cut down to what this policy allows: `*` becomes the
    /// policy's own list.
    pub fn narrow(&self, wanted: &[String]) -> Vec<String> {
        if self.all_attributes() {
            return wanted.to_vec();
        }
        if wanted.iter().any(|a| a == "*") {
            return self.attributes.clone();
        }
        wanted
            .iter()
            .filter(|a| self.may_read(a))
            .cloned()
            .collect()
    }
}

/// One write outside the policy, named for the row error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Attribute(String),
    Role(String),
}

impl WritePolicy {
    pub fn allow_all() -> Self {
        Self {
            attributes: vec!["*".into()],
            roles: vec!["*".into()],
        }
    }
    pub fn may_write(&self, attribute: &str) -> bool {
        self.attributes.iter().any(|a| a == "*" || a == attribute)
    }
    pub fn all_roles(&self) -> bool {
        self.roles.iter().any(|r| r == "*")
    }
    pub fn may_grant(&self, role: &str) -> bool {
        self.all_roles() || self.roles.iter().any(|r| r == role)
    }
    /// Every attribute and role in `incoming` that the policy does not name.
    pub fn violations(&self, incoming: &Incoming) -> Vec<Violation> {
        let mut v: Vec<Violation> = incoming
            .attrs
            .keys()
            .filter(|a| !self.may_write(a))
            .map(|a| Violation::Attribute(a.clone()))
            .collect();
        if let Some(roles) = &incoming.roles {
            if !self.may_write(crate::schema::ROLES) && !self.all_roles() && self.roles.is_empty() {
                v.push(Violation::Attribute(crate::schema::ROLES.into()));
            } else {
                v.extend(
                    roles
                        .iter()
                        .filter(|r| !self.may_grant(r))
                        .map(|r| Violation::Role(r.clone())),
                );
            }
        }
        v
    }
    /// A short stable fingerprint, part of the "unchanged" shortcut key.
    pub fn fingerprint(&self) -> String {
        let mut a = self.attributes.clone();
        a.sort();
        let mut r = self.roles.clone();
        r.sort();
        format!("a={};r={}", a.join(","), r.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttrValue, ExternalId};
    #[test]
    fn the_importer_role_cannot_read_people() {
        let p = role_permissions("importer").unwrap();
        assert!(p.contains(&Permission::ImportsCreate));
        assert!(!p.contains(&Permission::PeopleRead));
        assert_eq!(
            role_permissions("admin").unwrap().len(),
            Permission::ALL.len()
        );
        let node = role_permissions("node").unwrap();
        assert!(node.contains(&Permission::SubscriptionsOwn));
        assert!(!node.contains(&Permission::SubscriptionsAdmin));
    }
    #[test]
    fn a_read_policy_narrows_what_is_asked_to_what_it_allows() {
        let p = ReadPolicy {
            attributes: vec!["given_name".into(), "department".into()],
            events: vec!["person.created".into()],
        };
        let asked = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            p.narrow(&asked(&["*"])),
            asked(&["given_name", "department"])
        );
        assert_eq!(
            p.narrow(&asked(&["department", "termination_date"])),
            asked(&["department"])
        );
        assert_eq!(
            p.first_unreadable(&asked(&["department", "roles"])),
            Some("roles")
        );
        assert_eq!(p.first_unreadable(&asked(&["*"])), Some("*"));
        assert!(p.may_see("person.created") && !p.may_see("person.updated"));
        let all = ReadPolicy::default();
        assert_eq!(all.narrow(&asked(&["*"])), asked(&["*"]));
        assert!(all.may_see("roles.changed") && all.first_unreadable(&asked(&["*"])).is_none());
    }
    #[test]
    fn scopes_parse_and_name_the_unknown_one() {
        assert_eq!(parse_scope("imports:create  people:read").unwrap().len(), 2);
        assert_eq!(parse_scope("imports:create nope").unwrap_err(), "nope");
    }
    #[test]
    fn violations_name_each_attribute_and_role() {
        let p = WritePolicy {
            attributes: vec!["given_name".into()],
            roles: vec!["staff".into()],
        };
        let mut inc = Incoming::new(ExternalId::parse("E1").unwrap());
        inc.attrs
            .insert("given_name".into(), Some(AttrValue::string("x")));
        inc.attrs.insert("department".into(), None);
        inc.roles = Some(["staff".to_string(), "admin".to_string()].into());
        assert_eq!(
            p.violations(&inc),
            vec![
                Violation::Attribute("department".into()),
                Violation::Role("admin".into())
            ]
        );
    }
}
