//! Compiles every `.proto` under `proto/` into OUT_DIR with tonic-build, using
//! the protoc binary vendored by `protoc-bin-vendored` (no system protoc), and
//! writes the descriptor set that reflection, the tenancy layer and gateways
//! load.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let root = root.canonicalize()?;
    let mut protos = Vec::new();
    collect(&root.join("foundry"), &mut protos)?;
    collect(&root.join("google"), &mut protos)?;
    protos.sort();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let includes = [root.clone(), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("foundry_descriptor.bin"))
        .include_file("foundry_protos.rs")
        .compile_with_config(config, &protos, &includes)?;

    aip::write(
        &std::fs::read(out_dir.join("foundry_descriptor.bin"))?,
        &out_dir.join("foundry_aip.rs"),
    )?;

    println!("cargo:rerun-if-changed={}", root.display());
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    Ok(())
}

/// Implements `crate::aip`'s traits for every message of a `foundry.*`
/// package that has the AIP shape, by its descriptor.
mod aip {
    use std::fmt::Write as _;

    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FileDescriptorSet};

    pub fn write(
        descriptors: &[u8],
        out: &std::path::Path,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let set = FileDescriptorSet::decode(descriptors)?;
        let mut code = String::new();
        super::rpc::write(&mut code, &set);
        for file in &set.file {
            let package = file.package();
            if !package.starts_with("foundry.") {
                continue;
            }
            let module = format!("crate::{}", package.replace('.', "::"));
            for m in &file.message_type {
                implement(&mut code, &module, package, m, &file.message_type);
            }
        }
        std::fs::write(out, code)?;
        Ok(())
    }

    fn has(m: &DescriptorProto, name: &str, ty: Type) -> bool {
        m.field.iter().any(|f| f.name() == name && f.r#type() == ty)
    }

    /// The field of `m` holding a `.package.X` message, named `x` in snake case.
    fn resource_field<'a>(m: &'a DescriptorProto, package: &str, x: &str) -> Option<&'a str> {
        let ty = format!(".{package}.{x}");
        m.field
            .iter()
            .find(|f| f.r#type() == Type::Message && f.type_name() == ty && f.name() == snake(x))
            .map(|f| f.name())
    }

    fn snake(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Whether the message `x` of the file is a resource (`id` and `etag`).
    fn is_resource(messages: &[DescriptorProto], x: &str) -> bool {
        messages
            .iter()
            .any(|r| r.name() == x && has(r, "id", Type::String) && has(r, "etag", Type::String))
    }

    fn implement(
        code: &mut String,
        module: &str,
        package: &str,
        m: &DescriptorProto,
        messages: &[DescriptorProto],
    ) {
        let name = m.name();
        let ty = format!("{module}::{name}");
        if has(m, "id", Type::String) && has(m, "etag", Type::String) {
            let _ = writeln!(
                code,
                "impl crate::aip::ResourceMessage for {ty} {{ fn id(&self) -> &str {{ &self.id }} \
                 fn etag(&self) -> &str {{ &self.etag }} }}"
            );
        }
        let stamp = ["created_by", "create_time", "update_time"];
        if has(m, "id", Type::String)
            && has(m, "etag", Type::String)
            && stamp.iter().all(|f| m.field.iter().any(|x| x.name() == *f))
        {
            let _ = writeln!(
                code,
                "impl crate::aip::Stamped for {ty} {{ fn stamped(id: String, created_by: String, \
                 create_time: Option<prost_types::Timestamp>, update_time: Option<prost_types::Timestamp>, \
                 etag: String) -> Self {{ Self {{ id, created_by, create_time, update_time, etag, \
                 ..Default::default() }} }} }}"
            );
        }
        if name.starts_with("List")
            && name.ends_with("Response")
            && has(m, "next_page_token", Type::String)
        {
            let items = m
                .field
                .iter()
                .find(|f| f.label() == Label::Repeated && f.r#type() == Type::Message);
            if let Some(f) = items {
                let item = f.type_name().rsplit('.').next().unwrap_or_default();
                let field = f.name();
                let _ = writeln!(
                    code,
                    "impl crate::aip::ListResponse for {ty} {{ type Item = {module}::{item}; \
                     fn of(items: Vec<{module}::{item}>, next_page_token: String) -> Self {{ \
                     Self {{ {field}: items, next_page_token }} }} }}"
                );
            }
        }
        let Some(stem) = name.strip_suffix("Request") else {
            return;
        };
        if stem.starts_with("List")
            && has(m, "page_size", Type::Int32)
            && has(m, "page_token", Type::String)
        {
            let _ = writeln!(
                code,
                "impl crate::aip::ListRequest for {ty} {{ fn page_size(&self) -> i32 {{ self.page_size }} \
                 fn page_token(&self) -> &str {{ &self.page_token }} }}"
            );
            let ids: Vec<&str> = m
                .field
                .iter()
                .filter(|f| f.r#type() == Type::String && f.label() != Label::Repeated)
                .map(|f| f.name())
                .filter(|f| f.ends_with("_id"))
                .collect();
            if let [parent] = ids[..] {
                let _ = writeln!(
                    code,
                    "impl crate::aip::ChildListRequest for {ty} {{ \
                     const PARENT: &'static str = \"{parent}\"; \
                     fn parent(&self) -> &str {{ &self.{parent} }} }}"
                );
            }
        }
        if let Some(x) = stem.strip_prefix("Create") {
            let ok = has(m, "request_id", Type::String) && is_resource(messages, x);
            if let Some(f) = resource_field(m, package, x).filter(|_| ok) {
                let _ = writeln!(
                    code,
                    "impl crate::aip::CreateRequest for {ty} {{ type Resource = {module}::{x}; \
                     const METHOD: &'static str = \"{stem}\"; const FIELD: &'static str = \"{f}\"; \
                     fn resource(&self) -> Option<&{module}::{x}> {{ self.{f}.as_ref() }} \
                     fn request_id(&self) -> &str {{ &self.request_id }} }}"
                );
            }
        } else if let Some(x) = stem.strip_prefix("Update") {
            let ok = has(m, "update_mask", Type::Message) && is_resource(messages, x);
            if let Some(f) = resource_field(m, package, x).filter(|_| ok) {
                let _ = writeln!(
                    code,
                    "impl crate::aip::UpdateRequest for {ty} {{ type Resource = {module}::{x}; \
                     const FIELD: &'static str = \"{f}\"; \
                     fn resource(&self) -> Option<&{module}::{x}> {{ self.{f}.as_ref() }} \
                     fn update_mask(&self) -> Option<&prost_types::FieldMask> {{ self.update_mask.as_ref() }} }}"
                );
            }
        } else if stem.starts_with("Get") && has(m, "id", Type::String) {
            let _ = writeln!(
                code,
                "impl crate::aip::GetRequest for {ty} {{ fn id(&self) -> &str {{ &self.id }} }}"
            );
        } else if stem.starts_with("Delete")
            && has(m, "id", Type::String)
            && has(m, "etag", Type::String)
        {
            let _ = writeln!(
                code,
                "impl crate::aip::DeleteRequest for {ty} {{ fn id(&self) -> &str {{ &self.id }} \
                 fn etag(&self) -> &str {{ &self.etag }} }}"
            );
        }
    }
}

/// The services as tables of unary methods: a marker per service
/// (`crate::service::delivery_v1::WorkstreamService`) with its name and
/// methods, `crate::aip::Unary` for every request message that one method
/// takes, and `crate::aip::Standard` for every resource whose service has
/// its AIP Create, Get, Update and Delete.
mod rpc {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Write as _;

    use prost_types::FileDescriptorSet;

    /// `.foundry.delivery.v1.Task` → `crate::foundry::delivery::v1::Task`;
    /// `.google.protobuf.Empty` → `()`; other types: none.
    fn rust_type(proto: &str) -> Option<String> {
        if proto == ".google.protobuf.Empty" {
            return Some("()".into());
        }
        let path = proto.strip_prefix(".foundry.")?;
        Some(format!("crate::foundry::{}", path.replace('.', "::")))
    }

    pub fn write(code: &mut String, set: &FileDescriptorSet) {
        // A request message taken by more than one method has no one method.
        let mut takers: HashMap<&str, usize> = HashMap::new();
        for s in set.file.iter().flat_map(|f| &f.service) {
            for m in &s.method {
                *takers.entry(m.input_type()).or_default() += 1;
            }
        }
        let mut markers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for file in &set.file {
            let package = file.package();
            let Some(short) = package.strip_prefix("foundry.") else {
                continue;
            };
            let module = format!("crate::service::{}", short.replace('.', "_"));
            for s in &file.service {
                let service = format!("{module}::{}", s.name());
                let full = format!("{package}.{}", s.name());
                let mut methods = Vec::new();
                let mut standard: BTreeMap<String, Vec<&str>> = BTreeMap::new();
                for m in &s.method {
                    let streams = m.client_streaming() || m.server_streaming();
                    let (Some(input), Some(output)) =
                        (rust_type(m.input_type()), rust_type(m.output_type()))
                    else {
                        continue;
                    };
                    if streams || takers[m.input_type()] != 1 {
                        continue;
                    }
                    let name = m.name();
                    methods.push(format!("\"{name}\""));
                    let _ = writeln!(
                        code,
                        "impl crate::aip::Unary for {input} {{ type Reply = {output}; \
                         type Service = {service}; const RPC: &'static str = \"{name}\"; \
                         const PATH: &'static str = \"/{full}/{name}\"; }}"
                    );
                    for verb in ["Create", "Get", "Update", "Delete"] {
                        let Some(x) = name.strip_prefix(verb) else {
                            continue;
                        };
                        let aip = m.input_type() == format!(".{package}.{name}Request");
                        let returns = if verb == "Delete" {
                            m.output_type() == ".google.protobuf.Empty"
                        } else {
                            m.output_type() == format!(".{package}.{x}")
                        };
                        if aip && returns {
                            standard.entry(x.to_string()).or_default().push(verb);
                        }
                    }
                }
                let pkg = short.replace('.', "::");
                for x in standard.keys().filter(|x| standard[*x].len() == 4) {
                    let [c, g, u, d] = ["Create", "Get", "Update", "Delete"]
                        .map(|verb| format!("crate::foundry::{pkg}::{verb}{x}Request"));
                    let _ = writeln!(
                        code,
                        "impl crate::aip::Standard for crate::foundry::{pkg}::{x} {{ \
                         type Create = {c}; type Get = {g}; type Update = {u}; type Delete = {d}; }}"
                    );
                }
                let marker = format!(
                    "/// `{full}`.\n#[derive(Debug)] pub struct {name}; \
                     impl crate::aip::Service for {name} {{ const NAME: &'static str = \"{full}\"; \
                     const METHODS: &'static [&'static str] = &[{methods}]; }}",
                    name = s.name(),
                    methods = methods.join(", "),
                );
                markers
                    .entry(short.replace('.', "_"))
                    .or_default()
                    .push(marker);
            }
        }
        code.push_str(
            "/// A marker per service, naming it and its unary methods \
             (`crate::aip::Service`).\npub mod service {\n",
        );
        for (module, markers) in markers {
            let _ = writeln!(code, "/// Services of the package.\npub mod {module} {{");
            for m in markers {
                let _ = writeln!(code, "{m}");
            }
            code.push_str("}\n");
        }
        code.push_str("}\n");
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
