//! The method → access table, built once from the descriptor set: each RPC's
//! `(foundry.tenancy.v1.access)` option. A method without one is absent from
//! the table, and the layer refuses absent methods (fail closed).

use std::collections::HashMap;

use foundry_proto::foundry::tenancy::v1::{Access as AccessProto, Scope as ScopeProto};
use prost_reflect::{DescriptorPool, Value};

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Anyone.
    Public,
    /// A user token, with or without an organization.
    User,
    /// A token acting in an organization, holding the permission.
    Org,
    /// A service account.
    Internal,
}

/// A method's declared access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The scope.
    pub scope: Scope,
    /// The permission (for `Org`: the token's role grants it; for
    /// `Internal`: the service account holds it as a capability).
    pub permission: String,
    /// Whether the handler confines a caller bound to a project to what
    /// its binding admits; the layer refuses the method to bound callers
    /// otherwise ([`crate::binding`]).
    pub confined: bool,
}

/// Paths (`/package.Service/Method`) to their declared access.
#[derive(Clone, Debug, Default)]
pub struct MethodTable {
    methods: HashMap<String, Access>,
    undeclared: Vec<String>,
}

/// The full name of the access extension.
pub const ACCESS_EXTENSION: &str = "foundry.tenancy.v1.access";

impl MethodTable {
    /// Reads every service method of an encoded `FileDescriptorSet`.
    pub fn from_descriptor_set(bytes: &[u8]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(bytes)?;
        Self::from_pool(&pool)
    }

    /// Reads every service method of a pool.
    pub fn from_pool(pool: &DescriptorPool) -> anyhow::Result<Self> {
        let ext = pool.get_extension_by_name(ACCESS_EXTENSION);
        let mut table = MethodTable::default();
        for service in pool.services() {
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                let declared = ext.as_ref().and_then(|ext| {
                    let options = method.options();
                    if !options.has_extension(ext) {
                        return None;
                    }
                    match options.get_extension(ext).as_ref() {
                        Value::Message(m) => m.transcode_to::<AccessProto>().ok(),
                        _ => None,
                    }
                });
                let declared = declared
                    .and_then(|a| access_from_proto(&a))
                    .or_else(|| built_in(service.full_name()));
                match declared {
                    Some(access) => {
                        table.methods.insert(path, access);
                    }
                    None => table.undeclared.push(path),
                }
            }
        }
        Ok(table)
    }

    /// The access of a method, if declared.
    pub fn get(&self, path: &str) -> Option<&Access> {
        self.methods.get(path)
    }

    /// Methods found without a (valid) declaration.
    pub fn undeclared(&self) -> &[String] {
        &self.undeclared
    }

    /// Every declared method.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.methods.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// The access of a service whose proto is not Foundry's to annotate:
/// `google.longrunning.Operations` admits any member of the organization
/// (every role reads the organization), and each method checks
/// `{service}.operations.read|write` for the service its operation names.
fn built_in(service: &str) -> Option<Access> {
    (service == "google.longrunning.Operations").then(|| Access {
        scope: Scope::Org,
        permission: "identity.organizations.read".to_owned(),
        confined: false,
    })
}

fn access_from_proto(a: &AccessProto) -> Option<Access> {
    let scope = match ScopeProto::try_from(a.scope).ok()? {
        ScopeProto::Unspecified => return None,
        ScopeProto::Public => Scope::Public,
        ScopeProto::User => Scope::User,
        ScopeProto::Org => Scope::Org,
        ScopeProto::Internal => Scope::Internal,
    };
    // An org or internal method without a permission is a declaration
    // mistake: refuse it.
    if matches!(scope, Scope::Org | Scope::Internal) && a.permission.is_empty() {
        return None;
    }
    Some(Access {
        scope,
        permission: a.permission.clone(),
        confined: a.confined,
    })
}

/// Whether a granted pattern (`*` alone, or `service.resource.verb` with `*`
/// for any segment) covers a permission.
pub fn pattern_matches(pattern: &str, permission: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut p = pattern.split('.');
    let mut q = permission.split('.');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

/// Whether any granted pattern covers the permission.
pub fn granted(patterns: &[String], permission: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_foundry_method_is_declared() {
        let table =
            MethodTable::from_descriptor_set(foundry_proto::FILE_DESCRIPTOR_SET).expect("table");
        assert!(
            table.undeclared().is_empty(),
            "undeclared: {:?}",
            table.undeclared()
        );
        let get = table
            .get("/foundry.identity.v1.OrganizationService/GetOrganization")
            .expect("declared");
        assert_eq!(get.scope, Scope::Org);
        assert_eq!(get.permission, "identity.organizations.read");
        assert!(
            !get.confined,
            "organization-wide: refused to a bound caller"
        );
        let confined = |path: &str| table.get(path).map(|a| a.confined);
        assert_eq!(
            confined("/foundry.delivery.v1.ProgramService/ListPrograms"),
            Some(true)
        );
        assert_eq!(
            confined("/foundry.delivery.v1.ProgramService/CreateProgram"),
            Some(false)
        );
        assert_eq!(
            table
                .get("/foundry.identity.v1.AuthService/ExchangeToken")
                .map(|a| a.scope),
            Some(Scope::Public)
        );
    }

    #[test]
    fn a_method_without_a_declaration_is_left_out_of_the_table() {
        use prost_types::{
            DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
            ServiceDescriptorProto,
        };
        let file = FileDescriptorProto {
            name: Some("probe.proto".into()),
            package: Some("probe.v1".into()),
            message_type: vec![DescriptorProto {
                name: Some("M".into()),
                ..Default::default()
            }],
            service: vec![ServiceDescriptorProto {
                name: Some("ProbeService".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Poke".into()),
                    input_type: Some(".probe.v1.M".into()),
                    output_type: Some(".probe.v1.M".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        let set = FileDescriptorSet { file: vec![file] };
        let bytes = prost::Message::encode_to_vec(&set);
        let table = MethodTable::from_descriptor_set(&bytes).expect("table");
        assert!(table.get("/probe.v1.ProbeService/Poke").is_none());
        assert_eq!(table.undeclared(), ["/probe.v1.ProbeService/Poke"]);
    }

    #[test]
    fn patterns_match_per_segment() {
        assert!(pattern_matches("*", "identity.members.write"));
        assert!(pattern_matches("identity.*.read", "identity.members.read"));
        assert!(pattern_matches("*.*.read", "delivery.tasks.read"));
        assert!(!pattern_matches("*.*.read", "delivery.tasks.write"));
        assert!(!pattern_matches(
            "identity.members",
            "identity.members.read"
        ));
        assert!(!pattern_matches(
            "identity.members.read.x",
            "identity.members.read"
        ));
    }
}
