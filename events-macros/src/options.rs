//! Parsing of `key = value` / `key(..)` options shared by both macros: unknown and duplicate
//! keys are reported on the key and parsing goes on, so every bad option shows up at once.

use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, UnOp};

use crate::ctxt::Ctxt;

/// Records an option once; a second occurrence is an error on its key.
pub fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, meta: &ParseNestedMeta, value: Option<T>) {
    if slot.is_some() {
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate option `{}`", path_name(meta)),
        );
    } else if let Some(value) = value {
        *slot = Some(value);
    }
}

pub fn path_name(meta: &ParseNestedMeta) -> String {
    let path = &meta.path;
    quote::quote!(#path).to_string().replace(' ', "")
}

/// Reports an unknown option on its key and skips its value.
pub fn unknown(
    cx: &Ctxt,
    macro_name: &str,
    meta: &ParseNestedMeta,
    known: &[&str],
) -> syn::Result<()> {
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown `{macro_name}` option `{}`; expected one of: {}",
            path_name(meta),
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    skip_value(meta)
}

/// Consumes `= expr` or `(..)` after a key, whatever it holds.
pub fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

/// The `= value` after a key; a key without one (`name` alone, `name("x")`) is an error on the key.
fn value(cx: &Ctxt, meta: &ParseNestedMeta, example: &str) -> syn::Result<Option<Expr>> {
    if meta.input.peek(syn::Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let key = path_name(meta);
    cx.error_spanned_by(
        &meta.path,
        format!("`{key}` expects a value, like `{key} = {example}`"),
    );
    skip_value(meta)?;
    Ok(None)
}

/// `key = "text"`: a non-empty string literal.
pub fn string(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<LitStr>> {
    let key = path_name(meta);
    let Some(expr) = value(cx, meta, "\"...\"")? else {
        return Ok(None);
    };
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value().trim().is_empty() => {
            cx.error_spanned_by(s, format!("`{key}` must not be empty"));
            Ok(None)
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(Some(s.clone())),
        other => {
            cx.error_spanned_by(
                other,
                format!("`{key}` expects a string literal, like `{key} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// `key = 12` or `key = -3`: an integer literal within `min..=max`.
pub fn integer(cx: &Ctxt, meta: &ParseNestedMeta, min: i64, max: i64) -> syn::Result<Option<i64>> {
    let key = path_name(meta);
    let Some(expr) = value(cx, meta, "2")? else {
        return Ok(None);
    };
    let (negative, lit) = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => (false, i),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => (true, i),
            _ => return not_integer(cx, &expr, &key),
        },
        _ => return not_integer(cx, &expr, &key),
    };
    let value = lit
        .base10_parse::<i64>()
        .map(|v| if negative { -v } else { v });
    match value {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => {
            cx.error_spanned_by(
                &expr,
                format!("`{key}` must be an integer from {min} to {max}"),
            );
            Ok(None)
        }
    }
}

fn not_integer(cx: &Ctxt, expr: &Expr, key: &str) -> syn::Result<Option<i64>> {
    cx.error_spanned_by(
        expr,
        format!("`{key}` expects an integer literal, like `{key} = 2`"),
    );
    Ok(None)
}
