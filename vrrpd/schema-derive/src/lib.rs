//! `#[derive(Documented)]` for vrrpd's configuration structs and enums, so
//! that vrrpd.toml(5) is made from the schema itself: a key added to a
//! struct is in the manual page with its doc comment, and a test in vrrpd
//! fails until it also says its default and its keepalived name.
//!
//! On a struct with named fields, each field becomes a key: its TOML name
//! (serde's `rename`), its aliases (serde's `alias`), its doc comment, its
//! shape (from the field's type, through `Documented`), and what
//! `#[key(...)]` says:
//!
//! - `default = LITERAL`: the value taken when the key is not written, as
//!   TOML (`default = 100`, `default = "1s"`, `default = false`); vrrpd's
//!   tests compare it with what `vrrpd check` prints;
//! - `default_is = "TEXT"`: a default that depends on something else;
//! - `required`: there is no default;
//! - `keepalived`: keepalived's keyword has the same name;
//!   `keepalived = "TEXT"`: keepalived's keyword or form, when it differs;
//!   `vrrpd_only`: keepalived has no such setting;
//! - `value = "TEXT"`: what the value is, when the type alone does not say
//!   (a field with its own deserializer).
//!
//! Fields serde skips are left out. On an enum of unit variants, the shape
//! is the choice of the variants' serde names.
//!
//! The generated code names `crate::config::schema`, where the types live.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Error, Expr, ExprLit, ExprUnary, Fields, Lit, LitStr, UnOp,
    parse_macro_input,
};

/// Implements `crate::config::schema::Documented` (and, for structs,
/// `DocumentedTable`); see the crate documentation for `#[key(...)]`.
#[proc_macro_derive(Documented, attributes(key))]
pub fn derive_documented(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let out = match &input.data {
        Data::Struct(data) => table(&input, &data.fields),
        Data::Enum(data) => choice(&input, data),
        Data::Union(_) => Err(Error::new(
            input.ident.span(),
            "Documented: unions are not configuration tables",
        )),
    };
    out.unwrap_or_else(Error::into_compile_error).into()
}

/// The doc comment's lines, one leading space removed from each.
fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
        {
            let line = s.value();
            lines.push(line.strip_prefix(' ').unwrap_or(&line).to_owned());
        }
    }
    lines.join("\n").trim().to_owned()
}

/// What serde's attributes say about a field or a variant.
#[derive(Default)]
struct Serde {
    rename: Option<String>,
    rename_all: Option<(String, Span)>,
    aliases: Vec<String>,
    skipped: bool,
}

fn serde_attrs(attrs: &[Attribute]) -> syn::Result<Serde> {
    let mut out = Serde::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match name.as_str() {
                "rename" if meta.input.peek(syn::Token![=]) => {
                    out.rename = Some(meta.value()?.parse::<LitStr>()?.value());
                }
                "rename_all" if meta.input.peek(syn::Token![=]) => {
                    let lit = meta.value()?.parse::<LitStr>()?;
                    out.rename_all = Some((lit.value(), lit.span()));
                }
                "alias" => out.aliases.push(meta.value()?.parse::<LitStr>()?.value()),
                "skip" | "skip_deserializing" => out.skipped = true,
                _ => {
                    // Everything else (default, with, skip_serializing_if,
                    // rename(serialize = ...), ...) does not change the key.
                    if meta.input.peek(syn::Token![=]) {
                        meta.value()?.parse::<Expr>()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|inner| {
                            if inner.input.peek(syn::Token![=]) {
                                inner.value()?.parse::<Expr>()?;
                            }
                            Ok(())
                        })?;
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// What `#[key(...)]` says about a field.
#[derive(Default)]
struct KeyAttrs {
    default: Option<Tokens>,
    keepalived: Option<Tokens>,
    value: Option<String>,
}

fn key_attrs(attrs: &[Attribute]) -> syn::Result<KeyAttrs> {
    let schema = quote!(crate::config::schema);
    let mut out = KeyAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("key")) {
        attr.parse_nested_meta(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let once = |slot: &Option<Tokens>, what: &str| -> syn::Result<()> {
                if slot.is_some() {
                    Err(meta.error(format!("the {what} is said twice")))
                } else {
                    Ok(())
                }
            };
            match name.as_str() {
                "default" => {
                    once(&out.default, "default")?;
                    let expr: Expr = meta.value()?.parse()?;
                    let toml = toml_literal(&expr)?;
                    out.default = Some(quote!(#schema::DefaultValue::Toml(#toml)));
                }
                "default_is" => {
                    once(&out.default, "default")?;
                    let text = meta.value()?.parse::<LitStr>()?;
                    out.default = Some(quote!(#schema::DefaultValue::Text(#text)));
                }
                "required" => {
                    once(&out.default, "default")?;
                    out.default = Some(quote!(#schema::DefaultValue::Required));
                }
                "keepalived" => {
                    once(&out.keepalived, "keepalived name")?;
                    out.keepalived = Some(if meta.input.peek(syn::Token![=]) {
                        let text = meta.value()?.parse::<LitStr>()?;
                        quote!(#schema::Keepalived::Named(#text))
                    } else {
                        quote!(#schema::Keepalived::Same)
                    });
                }
                "vrrpd_only" => {
                    once(&out.keepalived, "keepalived name")?;
                    out.keepalived = Some(quote!(#schema::Keepalived::None));
                }
                "value" => {
                    if out.value.is_some() {
                        return Err(meta.error("the value is said twice"));
                    }
                    out.value = Some(meta.value()?.parse::<LitStr>()?.value());
                }
                _ => {
                    return Err(meta.error(
                        "expected default = LITERAL, default_is = \"...\", required, \
                         keepalived, keepalived = \"...\", vrrpd_only or value = \"...\"",
                    ));
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// A Rust literal as TOML text: strings quoted and escaped, numbers and
/// booleans as they are.
fn toml_literal(expr: &Expr) -> syn::Result<String> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(s) => {
                let mut out = String::from("\"");
                for c in s.value().chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
                out.push('"');
                Ok(out)
            }
            Lit::Int(i) => Ok(i.base10_digits().to_owned()),
            Lit::Float(f) => Ok(f.base10_digits().to_owned()),
            Lit::Bool(b) => Ok(b.value.to_string()),
            other => Err(Error::new(other.span(), "a string, number or boolean")),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => Ok(format!("-{}", toml_literal(expr)?)),
        Expr::Array(a) => {
            let items: syn::Result<Vec<String>> = a.elems.iter().map(toml_literal).collect();
            Ok(format!("[{}]", items?.join(", ")))
        }
        other => Err(Error::new(
            other.span(),
            "default = a literal (string, number, boolean or array of them); \
             use default_is = \"...\" for a default that depends on something",
        )),
    }
}

fn table(input: &DeriveInput, fields: &Fields) -> syn::Result<Tokens> {
    let schema = quote!(crate::config::schema);
    let ident = &input.ident;
    let Fields::Named(named) = fields else {
        return Err(Error::new(
            ident.span(),
            "Documented: a table needs named fields",
        ));
    };
    let mut keys = Vec::new();
    for field in &named.named {
        let serde = serde_attrs(&field.attrs)?;
        if serde.skipped {
            continue;
        }
        let rust_name = field
            .ident
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let name = serde.rename.unwrap_or(rust_name);
        let aliases = &serde.aliases;
        let doc = doc_text(&field.attrs);
        let attrs = key_attrs(&field.attrs)?;
        let default = opt(attrs.default);
        let keepalived = opt(attrs.keepalived);
        let value = match &attrs.value {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        let ty = &field.ty;
        keys.push(quote! {
            #schema::Key {
                name: #name,
                aliases: &[#(#aliases),*],
                doc: #doc,
                default: #default,
                keepalived: #keepalived,
                value: #value,
                shape: <#ty as #schema::Documented>::shape,
            }
        });
    }
    let doc = doc_text(&input.attrs);
    let type_name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #schema::DocumentedTable for #ident #ty_generics #where_clause {
            fn table() -> &'static #schema::Table {
                static TABLE: #schema::Table = #schema::Table {
                    type_name: #type_name,
                    doc: #doc,
                    keys: &[#(#keys),*],
                };
                &TABLE
            }
        }

        impl #impl_generics #schema::Documented for #ident #ty_generics #where_clause {
            fn shape() -> #schema::Shape {
                #schema::Shape::Table(<Self as #schema::DocumentedTable>::table)
            }
        }
    })
}

fn opt(tokens: Option<Tokens>) -> Tokens {
    match tokens {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}

fn choice(input: &DeriveInput, data: &syn::DataEnum) -> syn::Result<Tokens> {
    let schema = quote!(crate::config::schema);
    let ident = &input.ident;
    let container = serde_attrs(&input.attrs)?;
    let mut names = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(Error::new(
                variant.span(),
                "Documented: only enums of unit variants are choices",
            ));
        }
        let serde = serde_attrs(&variant.attrs)?;
        if serde.skipped {
            continue;
        }
        let name = match (serde.rename, &container.rename_all) {
            (Some(name), _) => name,
            (None, Some((rule, span))) => rename(&variant.ident.to_string(), rule, *span)?,
            (None, None) => variant.ident.to_string(),
        };
        names.push(name);
    }
    Ok(quote! {
        impl #schema::Documented for #ident {
            fn shape() -> #schema::Shape {
                #schema::Shape::Choice(&[#(#names),*])
            }
        }
    })
}

/// serde's `rename_all` rules that a configuration enum uses.
fn rename(variant: &str, rule: &str, span: Span) -> syn::Result<String> {
    let snake = || {
        let mut out = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    };
    Ok(match rule {
        "lowercase" => variant.to_lowercase(),
        "UPPERCASE" => variant.to_uppercase(),
        "snake_case" => snake(),
        "kebab-case" => snake().replace('_', "-"),
        "SCREAMING_SNAKE_CASE" => snake().to_uppercase(),
        _ => {
            return Err(Error::new(
                span,
                format!("Documented: rename_all = \"{rule}\" is not known here; add it"),
            ));
        }
    })
}
