//! The aimass plugin SDK's WIT, for `wit_bindgen::generate!`.
//!
//! `generate!` resolves a relative `path:` against the `CARGO_MANIFEST_DIR` of the crate being
//! compiled, which for the SDK's export macros is the *plugin* crate, wherever it is on disk. So
//! this crate carries the WIT itself: the files of its `wit/` directory (in the repository a
//! symlink to the top-level `wit/`, which the host's bindings read too; `cargo package` copies
//! the files) are compiled into it, and [`generate!`] hands them to wit-bindgen `inline`. A
//! plugin therefore needs only a dependency on `aimass-plugin-sdk`, by path or by version, and
//! no copy of the WIT.
//!
//! The text is embedded rather than pointed at by an absolute path, because an absolute path
//! fixed at compile time goes stale when the checkout moves and cargo reuses this crate's
//! artifact (the target directory tracks the files' contents, not where they were).

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// The files of the `aimass:plugin` WIT package this crate ships, in `wit/`.
const WIT_FILES: [(&str, &str); 2] = [
    ("types.wit", include_str!("../wit/types.wit")),
    ("worlds.wit", include_str!("../wit/worlds.wit")),
];

/// The `package` line each file starts its declarations with.
const PACKAGE: &str = "package aimass:plugin@0.1.0;";

/// The package as one WIT document: the first file whole, the others after their `package`
/// line (a document declares its package once).
fn document() -> Result<String, String> {
    let mut out = String::new();
    for (i, (name, text)) in WIT_FILES.iter().enumerate() {
        let Some(at) = text.find(PACKAGE) else {
            return Err(format!("wit/{name} does not declare `{PACKAGE}`"));
        };
        out.push_str(if i == 0 {
            text
        } else {
            &text[at + PACKAGE.len()..]
        });
        out.push('\n');
    }
    Ok(out)
}

/// `generate!(path::to::wit_bindgen, { options })` expands to
/// `path::to::wit_bindgen::generate!({ path: [], inline: "<the WIT>", options });`, an item
/// (the empty `path` keeps wit-bindgen from also reading a `wit/` of the plugin crate).
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
        Group::new(Delimiter::Bracket, TokenStream::new()).into(),
        Punct::new(',', Spacing::Alone).into(),
        Ident::new("inline", Span::call_site()).into(),
        Punct::new(':', Spacing::Alone).into(),
        Literal::string(&document()?).into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.wit` file in `wit/` is compiled in, and each declares the one package.
    #[test]
    fn every_wit_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = WIT_FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded, "list every file of wit/ in WIT_FILES");
        let doc = document().unwrap();
        assert_eq!(doc.matches(PACKAGE).count(), 1, "{doc}");
        assert!(doc.contains("world imports") && doc.contains("interface types"));
    }
}
