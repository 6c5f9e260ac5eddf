//! Where the aimass plugin SDK's WIT is, for `wit_bindgen::generate!`.
//!
//! `generate!` resolves a relative `path:` against the `CARGO_MANIFEST_DIR` of the crate being
//! compiled, which for the SDK's export macros is the *plugin* crate, wherever it is on disk. A
//! `macro_rules!` macro cannot produce a string literal from the SDK's own location, so this crate
//! does it: the WIT directory ships inside this package (`wit/`, in the repository a symlink to
//! the top-level `wit/`, which the host's bindings read too; `cargo package` copies the files), and
//! [`generate!`] hands wit-bindgen its absolute path, fixed when this crate is compiled. A plugin
//! therefore needs only a dependency on `aimass-plugin-sdk`, by path or by version, and no copy of
//! the WIT.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// The `aimass:plugin` WIT package this crate ships.
const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/wit");

/// `generate!(path::to::wit_bindgen, { options })` expands to
/// `path::to::wit_bindgen::generate!({ path: "<this crate>/wit", options });`, an item.
///
/// The options must not set `path` (or `inline`) themselves. Not public API of the SDK: its
/// export macros and its own import bindings call it.
#[proc_macro]
pub fn generate(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(out) => out,
        Err(message) => compile_error(&message),
    }
}

fn expand(input: TokenStream) -> Result<TokenStream, String> {
    let mut tokens: Vec<TokenTree> = input.into_iter().collect();
    let options = match tokens.pop() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => g,
        _ => return Err("expected `path::to::wit_bindgen, { options }`".into()),
    };
    match tokens.pop() {
        Some(TokenTree::Punct(p)) if p.as_char() == ',' => {}
        _ => return Err("expected a `,` before the `{ options }`".into()),
    }
    if tokens.is_empty() {
        return Err("expected the path of the wit-bindgen crate first".into());
    }

    let mut body: Vec<TokenTree> = vec![
        Ident::new("path", Span::call_site()).into(),
        Punct::new(':', Spacing::Alone).into(),
        Literal::string(WIT_DIR).into(),
        Punct::new(',', Spacing::Alone).into(),
    ];
    body.extend(options.stream());

    let mut out = tokens;
    out.push(Punct::new(':', Spacing::Joint).into());
    out.push(Punct::new(':', Spacing::Alone).into());
    out.push(Ident::new("generate", Span::call_site()).into());
    out.push(Punct::new('!', Spacing::Alone).into());
    let braced = Group::new(Delimiter::Brace, body.into_iter().collect());
    out.push(Group::new(Delimiter::Parenthesis, TokenTree::from(braced).into()).into());
    // Item position: a parenthesised macro call needs its `;`.
    out.push(Punct::new(';', Spacing::Alone).into());
    Ok(out.into_iter().collect())
}

fn compile_error(message: &str) -> TokenStream {
    let tokens: Vec<TokenTree> = vec![
        Ident::new("compile_error", Span::call_site()).into(),
        Punct::new('!', Spacing::Alone).into(),
        Group::new(
            Delimiter::Parenthesis,
            TokenTree::from(Literal::string(message)).into(),
        )
        .into(),
        Punct::new(';', Spacing::Alone).into(),
    ];
    tokens.into_iter().collect()
}
