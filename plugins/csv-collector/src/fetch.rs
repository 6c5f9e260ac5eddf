//! `url`: one GET through the standard `wasi:http/outgoing-handler`. The host decides whether the
//! request may leave (its outbound grant for this plugin) and bounds the response size; here the
//! outcome is only turned into data or a readable error.

use aimass_plugin_sdk::{Error, Result};
use std::io::Read as _;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

/// GET `url`: the response's content type, if it names one, and its body.
pub fn get(url: &str) -> Result<(Option<String>, Vec<u8>)> {
    let bad = |why: &str| Error::invalid_config(format!("url {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http:// or https://"))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad("expected http:// or https://")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&scheme))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(path)))
        .map_err(|()| bad("not a valid URL"))?;
    let failed = |why: String| Error::invalid_input(format!("fetching {url}: {why}"));
    let future = outgoing_handler::handle(request, None).map_err(|e| failed(format!("{e:?}")))?;
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| failed("response already taken".into()))?
        .map_err(|e| failed(format!("{e:?}")))?;
    let status = response.status();
    if !(200..300).contains(&status) {
        return Err(failed(format!("HTTP status {status}")));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let body = response.consume().map_err(|()| failed("no body".into()))?;
    let mut data = Vec::new();
    {
        let mut stream = body.stream().map_err(|()| failed("no body".into()))?;
        stream
            .read_to_end(&mut data)
            .map_err(|e| failed(format!("reading the body: {e}")))?;
    }
    Ok((content_type, data))
}
