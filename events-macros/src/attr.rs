//! Options of the macros (`key = value`, `key(..)`, `key`), read into typed slots.
//!
//! An [`Attr`] knows its key and keeps the key's tokens, so a duplicate, or a rule between
//! options checked later (`valid`), is reported on the user's key. A bad value is reported on
//! the value and parsing goes on: every bad option of one attribute shows up in one build.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::discouraged::Speculative;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Path, Type, UnOp};

use crate::ctxt::Ctxt;

/// One option: its key as written (once seen) and its value (once valid).
pub struct Attr<T> {
    name: &'static str,
    key: Option<Path>,
    value: Option<T>,
}

impl<T> Attr<T> {
    pub fn none(name: &'static str) -> Self {
        Attr {
            name,
            key: None,
            value: None,
        }
    }

    /// Whether `meta` is this option's key.
    pub fn is(&self, meta: &ParseNestedMeta) -> bool {
        meta.path.is_ident(self.name)
    }

    /// Records the option; a second occurrence is an error on its key. `value` is `None`
    /// when the value was bad (already reported): the key still counts as given.
    pub fn set(&mut self, cx: &Ctxt, meta: &ParseNestedMeta, value: Option<T>) {
        if self.key.is_some() {
            cx.error_spanned_by(&meta.path, format!("duplicate option `{}`", self.name));
            return;
        }
        self.key = Some(meta.path.clone());
        self.value = value;
    }

    /// The key, when the option was written (even with a bad value).
    pub fn key(&self) -> Option<&Path> {
        self.key.as_ref()
    }

    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

/// Declares the options of one attribute: a struct of [`Attr`] slots, one per option, each
/// read by its parser (`fn(&Ctxt, &ParseNestedMeta) -> syn::Result<Option<T>>`), with
/// `read` (one option into its slot; `false` for an unknown key), `from_args` (an attribute
/// macro's arguments) and `from_attrs` (the `#[name(..)]` attributes of a derive input).
macro_rules! options {
    (
        $(#[$doc:meta])*
        pub struct $options:ident for $attr_name:literal {
            $( $(#[$field_doc:meta])* $field:ident: $ty:ty = $parse:expr, )+
        }
    ) => {
        $(#[$doc])*
        pub struct $options {
            $( $(#[$field_doc])* pub $field: $crate::attr::Attr<$ty>, )+
        }

        impl $options {
            /// The option names, for "expected one of".
            const KNOWN: &'static [&'static str] = &[$(stringify!($field)),+];

            fn new() -> Self {
                Self { $( $field: $crate::attr::Attr::none(stringify!($field)), )+ }
            }

            /// Reads one option into its slot; `false` when the key is not one of these.
            #[allow(dead_code)]
            fn read(
                &mut self,
                cx: &$crate::ctxt::Ctxt,
                meta: &::syn::meta::ParseNestedMeta,
            ) -> ::syn::Result<bool> {
                $(
                    if self.$field.is(meta) {
                        let parse: fn(
                            &$crate::ctxt::Ctxt,
                            &::syn::meta::ParseNestedMeta,
                        ) -> ::syn::Result<Option<$ty>> = $parse;
                        let value = parse(cx, meta)?;
                        self.$field.set(cx, meta, value);
                        return Ok(true);
                    }
                )+
                Ok(false)
            }

            /// The options of an attribute macro's arguments.
            #[allow(dead_code)]
            pub fn from_args(cx: &$crate::ctxt::Ctxt, args: ::proc_macro2::TokenStream) -> Self {
                let mut options = Self::new();
                $crate::attr::parse_options(cx, $attr_name, Self::KNOWN, args, |meta| {
                    options.read(cx, meta)
                });
                options
            }

            /// The options of the `#[name(..)]` attributes of a derive input.
            #[allow(dead_code)]
            pub fn from_attrs(cx: &$crate::ctxt::Ctxt, attrs: &[::syn::Attribute]) -> Self {
                let mut options = Self::new();
                $crate::attr::parse_attributes(cx, $attr_name, Self::KNOWN, attrs, |meta| {
                    options.read(cx, meta)
                });
                options
            }
        }
    };
}

pub(crate) use options;

/// Reads `key = value` or `key(..)` options with `each`, then reports unknown keys (spanned
/// on the key, listing `known`) and syntax errors into `cx`.
pub fn parse_options(
    cx: &Ctxt,
    macro_name: &str,
    known: &[&str],
    args: TokenStream,
    mut each: impl FnMut(&ParseNestedMeta) -> syn::Result<bool>,
) {
    let parser = syn::meta::parser(|meta| {
        if !each(&meta)? {
            unknown(cx, macro_name, &meta, known)?;
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }
}

/// [`parse_options`] for each `#[attr_name(..)]` among `attrs`.
pub fn parse_attributes(
    cx: &Ctxt,
    attr_name: &str,
    known: &[&str],
    attrs: &[syn::Attribute],
    mut each: impl FnMut(&ParseNestedMeta) -> syn::Result<bool>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            other => {
                cx.error_spanned_by(
                    other,
                    format!("expected options, like `#[{attr_name}(name = \"...\")]`"),
                );
                continue;
            }
        };
        parse_options(cx, attr_name, known, tokens, &mut each);
    }
}

fn unknown(cx: &Ctxt, macro_name: &str, meta: &ParseNestedMeta, known: &[&str]) -> syn::Result<()> {
    let known: Vec<_> = known.iter().map(|k| format!("`{k}`")).collect();
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown `{macro_name}` option `{}`; expected one of: {}",
            key_name(meta),
            known.join(", ")
        ),
    );
    skip_value(meta)
}

pub fn key_name(meta: &ParseNestedMeta) -> String {
    meta.path.to_token_stream().to_string().replace(' ', "")
}

/// Consumes `= value` or `(..)` after a key, whatever it holds, up to the next option.
pub fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?;
        skip_to_comma(meta.input)
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
        Ok(())
    } else {
        Ok(())
    }
}

/// Skips tokens up to the next `,` outside angle brackets (or the end).
fn skip_to_comma(input: ParseStream) -> syn::Result<()> {
    let mut depth = 0usize;
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let proc_macro2::TokenTree::Punct(p) = &tt {
                match p.as_char() {
                    ',' if depth == 0 => return Ok(((), rest)),
                    '<' => depth += 1,
                    '>' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// The `= value` after a key, parsed as `T`; a missing `=` or a bad value is an error (on the
/// key, or on the value with `what`, like "a string literal, like `name = \"...\"`").
fn value<T: Parse>(cx: &Ctxt, meta: &ParseNestedMeta, what: &str) -> syn::Result<Option<T>> {
    let key = key_name(meta);
    if !meta.input.peek(syn::Token![=]) {
        cx.error_spanned_by(&meta.path, format!("`{key}` expects {what}"));
        skip_value(meta)?;
        return Ok(None);
    }
    let input = meta.value()?;
    let fork = input.fork();
    match fork.parse::<T>() {
        // What follows is the option list's business (a missing `,` is a syntax error there).
        Ok(value) => {
            input.advance_to(&fork);
            Ok(Some(value))
        }
        Err(_) => {
            let start = input.cursor().span();
            skip_to_comma(input)?;
            cx.syn_error(syn::Error::new(start, format!("`{key}` expects {what}")));
            Ok(None)
        }
    }
}

/// `key = "text"`: a non-empty string literal.
pub fn string(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<LitStr>> {
    let key = key_name(meta);
    let what = format!("a string literal, like `{key} = \"...\"`");
    let Some(expr) = value::<Expr>(cx, meta, &what)? else {
        return Ok(None);
    };
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value().trim().is_empty() => {
            cx.error_spanned_by(&s, format!("`{key}` must not be empty"));
            Ok(None)
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(Some(s)),
        other => {
            cx.error_spanned_by(other, format!("`{key}` expects {what}"));
            Ok(None)
        }
    }
}

/// `key = 12` or `key = -3`: an integer literal within `min..=max`.
pub fn integer(cx: &Ctxt, meta: &ParseNestedMeta, min: i64, max: i64) -> syn::Result<Option<i64>> {
    let key = key_name(meta);
    let what = format!("an integer literal, like `{key} = 2`");
    let Some(expr) = value::<Expr>(cx, meta, &what)? else {
        return Ok(None);
    };
    let parsed = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Some(i.base10_parse::<i64>()),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => Some(i.base10_parse::<i64>().map(|v| -v)),
            _ => None,
        },
        _ => None,
    };
    match parsed {
        None => cx.error_spanned_by(&expr, format!("`{key}` expects {what}")),
        Some(Ok(v)) if (min..=max).contains(&v) => return Ok(Some(v)),
        Some(_) => cx.error_spanned_by(
            &expr,
            format!("`{key}` must be an integer from {min} to {max}"),
        ),
    }
    Ok(None)
}

/// `key = Type`.
pub fn ty(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<Type>> {
    let key = key_name(meta);
    value(cx, meta, &format!("a type, like `{key} = u64`"))
}

/// `key = path::to::item`.
pub fn path(cx: &Ctxt, meta: &ParseNestedMeta, example: &str) -> syn::Result<Option<Path>> {
    let key = key_name(meta);
    value(
        cx,
        meta,
        &format!("{example}, like `{key} = path::to::item`"),
    )
}

/// A key without a value, like `durable`.
pub fn flag(cx: &Ctxt, meta: &ParseNestedMeta, usage: &str) -> syn::Result<Option<()>> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        return Ok(Some(()));
    }
    let key = key_name(meta);
    cx.error_spanned_by(
        &meta.path,
        format!("`{key}` takes no value: write `{usage}`"),
    );
    skip_value(meta)?;
    Ok(None)
}

/// `key(A, B)`: a list of types, described as `what` ("event types").
pub fn type_list(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    what: &str,
    example: &str,
) -> syn::Result<Option<Vec<Type>>> {
    let key = key_name(meta);
    let message = format!("`{key}` lists {what}, like `{key}({example})`");
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(&meta.path, message);
        skip_value(meta)?;
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    match content.parse_terminated(Type::parse, syn::Token![,]) {
        Ok(types) => Ok(Some(types.into_iter().collect())),
        Err(err) => {
            cx.syn_error(syn::Error::new(err.span(), message));
            content.parse::<TokenStream>()?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    /// Parses `args` with a `name` string and an `order` integer, returning the values and
    /// every error message, in order.
    fn parse(args: TokenStream) -> (Option<String>, Option<i64>, Vec<String>) {
        let cx = Ctxt::new();
        let mut name = Attr::none("name");
        let mut order = Attr::none("order");
        parse_options(&cx, "test", &["name", "order"], args, |meta| {
            if name.is(meta) {
                name.set(&cx, meta, string(&cx, meta)?);
            } else if order.is(meta) {
                order.set(&cx, meta, integer(&cx, meta, -5, 5)?);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        };
        (name.get().map(LitStr::value), order.get().copied(), errors)
    }

    #[test]
    fn reads_valid_options() {
        let (name, order, errors) = parse(quote!(name = "search.index", order = -3));
        assert_eq!((name.as_deref(), order), (Some("search.index"), Some(-3)));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn reports_every_bad_option_of_one_attribute() {
        let (name, order, errors) = parse(quote!(retires = 3, name = 5, order = "first"));
        assert_eq!((name, order), (None, None));
        assert_eq!(
            errors,
            [
                "unknown `test` option `retires`; expected one of: `name`, `order`",
                "`name` expects a string literal, like `name = \"...\"`",
                "`order` expects an integer literal, like `order = 2`",
            ]
        );
    }

    #[test]
    fn a_bad_value_does_not_stop_the_next_options() {
        let (name, order, errors) = parse(quote!(order = first, name = "kept"));
        assert_eq!(name.as_deref(), Some("kept"));
        assert_eq!(order, None);
        assert_eq!(
            errors,
            ["`order` expects an integer literal, like `order = 2`"]
        );
    }

    #[test]
    fn reports_duplicates_out_of_range_empty_and_missing_values() {
        let (_, _, errors) = parse(quote!(name = "a", name = "b"));
        assert_eq!(errors, ["duplicate option `name`"]);
        let (_, _, errors) = parse(quote!(order = 6));
        assert_eq!(errors, ["`order` must be an integer from -5 to 5"]);
        let (_, _, errors) = parse(quote!(name = "  "));
        assert_eq!(errors, ["`name` must not be empty"]);
        let (_, _, errors) = parse(quote!(name));
        assert_eq!(
            errors,
            ["`name` expects a string literal, like `name = \"...\"`"]
        );
    }

    #[test]
    fn a_missing_comma_is_a_syntax_error() {
        let (_, _, errors) = parse(quote!(name = "a" order = 1));
        assert_eq!(errors, ["expected `,`"]);
    }

    #[test]
    fn skips_to_the_next_option_outside_angle_brackets() {
        let cx = Ctxt::new();
        let mut output = Attr::none("output");
        let mut seen = Vec::new();
        let args = quote!(output = "u64" HashMap<K, V>, later);
        parse_options(&cx, "test", &["output"], args, |meta| {
            if output.is(meta) {
                output.set(&cx, meta, ty(&cx, meta)?);
            } else {
                seen.push(key_name(meta));
            }
            Ok(true)
        });
        assert_eq!(seen, ["later"]);
        assert!(output.key().is_some() && output.get().is_none());
        let errors: Vec<_> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors, ["`output` expects a type, like `output = u64`"]);
    }
}
