//! `#[derive(FieldPath)]` for an enum of unit variants, one per update-mask
//! path of a resource. It writes what would otherwise be listed twice by
//! hand: `FieldPath::ALL` (every variant) and `FieldPath::name` (each
//! variant's path, its name in `snake_case`). What it writes, for
//! `enum GoalPath { Title, TargetTime }`:
//!
//! ```text
//! impl foundry_domain::FieldPath for GoalPath {
//!     const ALL: &'static [Self] = &[GoalPath::Title, GoalPath::TargetTime];
//!     const OUTPUT_ONLY: &'static [&'static str] = <output_only, or &[]>;
//!     fn name(self) -> &'static str {
//!         match self { GoalPath::Title => "title", GoalPath::TargetTime => "target_time" }
//!     }
//!     fn elsewhere(path: &str) -> Option<&'static str> { <elsewhere>(path) } // if given
//! }
//! ```
//!
//! Attributes: on the enum, `#[field_path(output_only = EXPR)]` (the
//! message's output-only fields) and `#[field_path(elsewhere = path::to_fn)]`
//! or `#[field_path(elsewhere(status = "changes through …"))]` (paths
//! changed by another method, see `FieldPath::elsewhere`); on a
//! variant, `#[field_path(name = "path")]` when its path is not its name in
//! `snake_case`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, LitStr, Path, Type, parse_macro_input};

/// The paths another method changes (`FieldPath::elsewhere`):
/// `elsewhere = path::to_fn`, or each path with what the client is told,
/// `elsewhere(status = "changes through ChangeTaskStatus")`.
enum Elsewhere {
    Fn(Path),
    Paths(Vec<(String, LitStr)>),
}

impl Elsewhere {
    fn parse(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Self> {
        if !meta.input.peek(syn::token::Paren) {
            return Ok(Elsewhere::Fn(meta.value()?.parse()?));
        }
        let mut paths = Vec::new();
        meta.parse_nested_meta(|inner| {
            let Some(path) = inner.path.get_ident() else {
                return Err(inner.error("a path is a field's name"));
            };
            paths.push((path.to_string(), inner.value()?.parse()?));
            Ok(())
        })?;
        Ok(Elsewhere::Paths(paths))
    }

    /// `FieldPath::elsewhere`.
    fn method(&self) -> Tokens {
        let body = match self {
            Elsewhere::Fn(f) => quote!(#f(path)),
            Elsewhere::Paths(paths) => {
                let (names, whys): (Vec<&String>, Vec<&LitStr>) =
                    paths.iter().map(|(n, w)| (n, w)).unzip();
                quote! {
                    match path {
                        #(#names => ::core::option::Option::Some(#whys),)*
                        _ => ::core::option::Option::None,
                    }
                }
            }
        };
        quote! {
            fn elsewhere(path: &str) -> ::core::option::Option<&'static str> {
                #body
            }
        }
    }
}

/// See the crate documentation.
#[proc_macro_derive(FieldPath, attributes(field_path))]
pub fn derive_field_path(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "FieldPath derives for an enum",
        ));
    };
    let mut output_only: Option<Expr> = None;
    let mut elsewhere: Option<Elsewhere> = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("field_path"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("output_only") {
                output_only = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("elsewhere") {
                elsewhere = Some(Elsewhere::parse(&meta)?);
                Ok(())
            } else {
                Err(meta.error("expected `output_only = ...` or `elsewhere = ...`"))
            }
        })?;
    }
    let mut variants = Vec::new();
    let mut names = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new_spanned(v, "a path is a unit variant"));
        }
        let mut path = snake_case(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("field_path")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    path = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(meta.error("expected `name = \"...\"`"))
                }
            })?;
        }
        variants.push(&v.ident);
        names.push(path);
    }
    let output_only = output_only.map_or_else(|| quote!(&[]), |e| quote!(#e));
    let elsewhere = elsewhere.map(|e| e.method());
    Ok(quote! {
        impl ::foundry_domain::FieldPath for #name {
            const ALL: &'static [Self] = &[#(#name::#variants),*];
            const OUTPUT_ONLY: &'static [&'static str] = #output_only;

            fn name(self) -> &'static str {
                match self {
                    #(#name::#variants => #names,)*
                }
            }

            #elsewhere
        }
    })
}

/// `#[derive(Change)]` for a resource's update: an enum with one variant per
/// updatable field, each holding the field's new value. From that one list
/// it writes the mask paths and the setter, which a hand-written pair of
/// lists would otherwise repeat. What it writes, for
/// `#[change(path = GoalPath, fields = NewGoal)] enum GoalChange {
/// Title(String), TargetTime(Option<DateTime<Utc>>) }`:
///
/// ```text
/// #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
/// pub enum GoalPath { Title, TargetTime }           // the mask's paths
/// impl foundry_domain::FieldPath for GoalPath { .. } // ALL, names (`target_time`),
///                                                    // output_only, elsewhere
/// impl foundry_domain::FieldChange for GoalChange {
///     type Path = GoalPath;
///     type Fields = NewGoal;
///     fn path(&self) -> GoalPath { match self { GoalChange::Title(_) => GoalPath::Title, .. } }
///     fn set(self, f: &mut NewGoal) { match self { GoalChange::Title(x) => f.title = x, .. } }
/// }
/// ```
///
/// Attributes: on the enum, `path = Ident` (the path enum to write),
/// `fields = Type` (what `set` writes to), and as for `FieldPath`
/// `output_only = EXPR` and `elsewhere = path::to_fn`; on a variant,
/// `name = "path"` when its path (and field) is not its name in
/// `snake_case`, `field = ident` when only its field is named otherwise.
#[proc_macro_derive(Change, attributes(change))]
pub fn derive_change(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_change(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_change(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let vis = &input.vis;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(input, "Change derives for an enum"));
    };
    let mut path: Option<syn::Ident> = None;
    let mut fields: Option<Type> = None;
    let mut output_only: Option<Expr> = None;
    let mut elsewhere: Option<Elsewhere> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("change")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("elsewhere") {
                elsewhere = Some(Elsewhere::parse(&meta)?);
                return Ok(());
            }
            let value = meta.value()?;
            if meta.path.is_ident("path") {
                path = Some(value.parse()?);
            } else if meta.path.is_ident("fields") {
                fields = Some(value.parse()?);
            } else if meta.path.is_ident("output_only") {
                output_only = Some(value.parse()?);
            } else {
                return Err(meta.error("expected path, fields, output_only or elsewhere"));
            }
            Ok(())
        })?;
    }
    let missing =
        |what: &str| syn::Error::new_spanned(input, format!("#[change({what} = ..)] is required"));
    let path = path.ok_or_else(|| missing("path"))?;
    let fields = fields.ok_or_else(|| missing("fields"))?;
    let mut variants = Vec::new();
    let mut names = Vec::new();
    let mut targets = Vec::new();
    for v in &data.variants {
        if !matches!(&v.fields, Fields::Unnamed(f) if f.unnamed.len() == 1) {
            return Err(syn::Error::new_spanned(
                v,
                "a change holds one value: `Title(String)`",
            ));
        }
        let mut path_name = snake_case(&v.ident.to_string());
        let mut field: Option<syn::Ident> = None;
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("change")) {
            attr.parse_nested_meta(|meta| {
                let value = meta.value()?;
                if meta.path.is_ident("name") {
                    path_name = value.parse::<LitStr>()?.value();
                } else if meta.path.is_ident("field") {
                    field = Some(value.parse()?);
                } else {
                    return Err(meta.error("expected name or field"));
                }
                Ok(())
            })?;
        }
        let field = field.unwrap_or_else(|| syn::Ident::new(&path_name, v.ident.span()));
        variants.push(&v.ident);
        names.push(path_name);
        targets.push(field);
    }
    let output_only = output_only.map_or_else(|| quote!(&[]), |e| quote!(#e));
    let elsewhere = elsewhere.map(|e| e.method());
    let doc = format!("The update-mask paths of [`{name}`] (see `#[derive(Change)]`).");
    Ok(quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #vis enum #path {
            #(#[allow(missing_docs)] #variants,)*
        }

        impl ::foundry_domain::FieldPath for #path {
            const ALL: &'static [Self] = &[#(#path::#variants),*];
            const OUTPUT_ONLY: &'static [&'static str] = #output_only;

            fn name(self) -> &'static str {
                match self {
                    #(#path::#variants => #names,)*
                }
            }

            #elsewhere
        }

        impl ::foundry_domain::FieldChange for #name {
            type Path = #path;
            type Fields = #fields;

            fn path(&self) -> #path {
                match self {
                    #(#name::#variants(_) => #path::#variants,)*
                }
            }

            fn set(self, fields: &mut #fields) {
                match self {
                    #(#name::#variants(x) => fields.#targets = x,)*
                }
            }
        }
    })
}

/// `#[derive(Record)]` for a stored resource's struct `{ id, .., stamp }`:
/// its key is its `id` (whose type is `Record::Key`) and its version that
/// of its `stamp`. What it writes, for `struct Goal { id: GoalId, .., stamp:
/// Stamp }`:
///
/// ```text
/// impl foundry_domain::Record for Goal {
///     type Key = GoalId;
///     fn key(&self) -> GoalId { self.id }
///     fn version(&self) -> i64 { self.stamp.version }
/// }
/// ```
///
/// When the struct has a `fields` member it also writes
/// `foundry_domain::OwnFields` (what a patch writes).
///
/// With `#[record(project = fields.program_id)]` (a field holding an id) it
/// also writes `fn project(&self) -> Option<Uuid>` returning it: the project
/// the resource belongs to; with `#[record(project_opt = fields.project_id)]`
/// (a field holding an optional id) it returns that.
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_record(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_record(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "Record derives for a struct",
        ));
    };
    let field = |wanted: &str| -> syn::Result<&Type> {
        data.fields
            .iter()
            .find(|f| f.ident.as_ref().is_some_and(|i| i == wanted))
            .map(|f| &f.ty)
            .ok_or_else(|| {
                syn::Error::new_spanned(input, format!("a Record has a field `{wanted}`"))
            })
    };
    let key = field("id")?;
    field("stamp")?;
    let own = field("fields").ok().map(|ty| {
        quote! {
            impl #impl_generics ::foundry_domain::OwnFields for #name #ty_generics #where_clause {
                type Fields = #ty;

                fn fields_mut(&mut self) -> &mut #ty {
                    &mut self.fields
                }
            }
        }
    });
    let mut project: Option<(Expr, bool)> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("record")) {
        attr.parse_nested_meta(|meta| {
            let optional = meta.path.is_ident("project_opt");
            if meta.path.is_ident("project") || optional {
                project = Some((meta.value()?.parse()?, optional));
                Ok(())
            } else {
                Err(meta.error("expected `project = ...` or `project_opt = ...`"))
            }
        })?;
    }
    let project = project.map(|(p, optional)| {
        let value = if optional {
            quote! { self.#p.map(::core::convert::Into::into) }
        } else {
            quote! { ::core::option::Option::Some(self.#p.into()) }
        };
        quote! {
            fn project(&self) -> ::core::option::Option<::foundry_domain::__uuid::Uuid> {
                #value
            }
        }
    });
    Ok(quote! {
        impl #impl_generics ::foundry_domain::Record for #name #ty_generics #where_clause {
            type Key = #key;

            fn key(&self) -> #key {
                self.id
            }

            fn version(&self) -> i64 {
                self.stamp.version
            }

            #project
        }

        #own
    })
}

/// `#[derive(Audited)]`: the value is audited by its serialized fields (the
/// default `foundry_domain::Audited::audit_fields`): it writes
/// `impl foundry_domain::Audited for X {}`. A value whose audit differs
/// implements the trait by hand instead.
#[proc_macro_derive(Audited)]
pub fn derive_audited(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        impl #impl_generics ::foundry_domain::Audited for #name #ty_generics #where_clause {}
    }
    .into()
}

/// `TargetTime` → `target_time`.
fn snake_case(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, c) in ident.chars().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_become_snake_case_paths() {
        assert_eq!(snake_case("Title"), "title");
        assert_eq!(snake_case("TargetTime"), "target_time");
        assert_eq!(snake_case("OwnerUserId"), "owner_user_id");
    }

    #[test]
    fn it_lists_every_variant_and_its_name() {
        let input: DeriveInput = syn::parse_quote! {
            #[field_path(output_only = OUT, elsewhere = crate::moved)]
            enum P { Title, #[field_path(name = "due_time")] Due }
        };
        let out = expand(&input).expect("expands").to_string();
        assert!(out.contains("& [P :: Title , P :: Due]"), "{out}");
        assert!(out.contains("P :: Due => \"due_time\""), "{out}");
        assert!(out.contains("OUT"), "{out}");
        assert!(out.contains("crate :: moved (path)"), "{out}");
        let bad: DeriveInput = syn::parse_quote! { enum P { Title(String) } };
        assert!(expand(&bad).is_err());
    }

    #[test]
    fn a_change_writes_its_paths_and_its_setter() {
        let input: DeriveInput = syn::parse_quote! {
            #[change(path = GoalPath, fields = NewGoal, output_only = OUT,
                     elsewhere(status = "changes through ChangeGoalStatus"))]
            pub enum GoalChange { Title(String), #[change(field = due_at)] DueTime(Option<u8>) }
        };
        let out = expand_change(&input).expect("expands").to_string();
        assert!(
            out.contains(
                "match path { \"status\" => :: core :: option :: Option :: Some (\"changes through ChangeGoalStatus\") , _ => :: core :: option :: Option :: None , }"
            ),
            "{out}"
        );
        assert!(
            out.contains("pub enum GoalPath { # [allow (missing_docs)] Title"),
            "{out}"
        );
        assert!(out.contains("GoalPath :: DueTime => \"due_time\""), "{out}");
        assert!(
            out.contains("GoalChange :: DueTime (x) => fields . due_at = x"),
            "{out}"
        );
        assert!(
            out.contains("GoalChange :: Title (_) => GoalPath :: Title"),
            "{out}"
        );
        let no_path: DeriveInput = syn::parse_quote! { enum C { Title(String) } };
        assert!(expand_change(&no_path).is_err());
        let unit: DeriveInput = syn::parse_quote! {
            #[change(path = P, fields = F)] enum C { Title }
        };
        assert!(expand_change(&unit).is_err());
    }

    #[test]
    fn a_record_is_keyed_by_its_id_and_versioned_by_its_stamp() {
        let input: DeriveInput = syn::parse_quote! {
            #[record(project = fields.program_id)]
            struct Goal { id: GoalId, fields: NewGoal, stamp: Stamp }
        };
        let out = expand_record(&input).expect("expands").to_string();
        assert!(
            out.contains("Some (self . fields . program_id . into ())"),
            "{out}"
        );
        assert!(out.contains("type Key = GoalId"), "{out}");
        assert!(out.contains("self . stamp . version"), "{out}");
        let no_stamp: DeriveInput = syn::parse_quote! { struct E { id: EId } };
        assert!(expand_record(&no_stamp).is_err());
    }
}
