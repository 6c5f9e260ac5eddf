//! Helpers for the object-event and warehouse tests: objects, hooks, datasets over real HTTP.

use super::{ADMIN, TestHost};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Send a request as admin; returns (status, JSON body or Null).
pub async fn call(
    host: &TestHost,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut rb = host.api().request(method.parse().unwrap(), path);
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// PUT an object through the host, asserting 201.
pub async fn put_object(host: &TestHost, key: &str, body: &str) -> Value {
    let (status, v) = call(
        host,
        "PUT",
        &format!("/v1/objects/{key}"),
        Some(body.into()),
    )
    .await;
    assert_eq!(status, 201, "PUT object {key}: {v}");
    v
}

/// Create or replace a hook, asserting success.
pub async fn put_hook(host: &TestHost, name: &str, spec: Value) -> Value {
    let (status, v) = call(
        host,
        "PUT",
        &format!("/v1/hooks/{name}"),
        Some(spec.to_string().into()),
    )
    .await;
    assert!(
        status == 200 || status == 201,
        "PUT hook {name}: {status} {v}"
    );
    v
}

pub async fn hook(host: &TestHost, name: &str) -> Value {
    let (status, v) = call(host, "GET", &format!("/v1/hooks/{name}"), None).await;
    assert_eq!(status, 200, "GET hook {name}: {v}");
    v
}

/// Poll a hook's status until `done` holds (panics with the last status after `timeout`).
pub async fn wait_hook(
    host: &TestHost,
    name: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = hook(host, name).await;
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "hook {name} did not get there in {timeout:?}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A dataset's description, or `None` (404).
pub async fn dataset(host: &TestHost, name: &str) -> Option<Value> {
    let (status, v) = call(host, "GET", &format!("/v1/datasets/{name}"), None).await;
    match status {
        200 => Some(v),
        404 => None,
        s => panic!("GET dataset {name}: {s} {v}"),
    }
}

/// Poll until the dataset has `rows` rows.
pub async fn wait_rows(host: &TestHost, name: &str, rows: u64, timeout: Duration) -> Value {
    let start = Instant::now();
    loop {
        let d = dataset(host, name).await;
        if let Some(d) = &d
            && d["rows"] == rows
        {
            return d.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "dataset {name} did not reach {rows} rows: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows of a dataset as JSON objects.
pub async fn rows(host: &TestHost, name: &str, query: &str) -> Vec<Value> {
    let (status, v) = call(
        host,
        "GET",
        &format!("/v1/datasets/{name}/rows{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "rows of {name}: {v}");
    v.as_array().expect("a JSON array").clone()
}

/// A sales CSV of 8 rows: one duplicate row and one outlier amount, so `dedup` then `outliers`
/// (IQR on `amount`) leave exactly 6, with amounts `base..base+6`.
pub fn sales_csv(base: i64) -> String {
    let mut s = String::from("region,amount,qty\n");
    for i in 0..6 {
        s += &format!("r{i},{},{}\n", base + i, i + 1);
    }
    s += &format!("r0,{},1\n", base); // duplicate of the first row
    s += &format!("rx,{},1\n", base * 1000 + 999_999); // outlier
    s
}

/// The user's story: csv-collector on `{prefix}` → `{tag}-raw`, dedup → `{tag}-dedup`, outliers
/// → `{tag}-clean`. Returns the three hook names.
pub async fn sales_hooks(host: &TestHost, tag: &str, prefix: &str) -> [String; 3] {
    let names = [
        format!("{tag}-collect"),
        format!("{tag}-dedup"),
        format!("{tag}-outliers"),
    ];
    put_hook(
        host,
        &names[0],
        json!({"plugin": "csv-collector", "prefix": prefix,
        "suffix": ".csv", "output": format!("{tag}-raw")}),
    )
    .await;
    put_hook(
        host,
        &names[1],
        json!({"plugin": "dedup", "prefix": format!("datasets/{tag}-raw/"),
        "output": format!("{tag}-dedup")}),
    )
    .await;
    put_hook(
        host,
        &names[2],
        json!({"plugin": "outliers", "prefix": format!("datasets/{tag}-dedup/"),
        "output": format!("{tag}-clean"), "config": {"method": "iqr", "columns": "amount"}}),
    )
    .await;
    names
}

/// Sorted `amount` values of a dataset's rows.
pub async fn amounts(host: &TestHost, name: &str) -> Vec<i64> {
    let mut a: Vec<i64> = rows(host, name, "?limit=100000")
        .await
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    a.sort();
    a
}

pub fn expected_amounts(bases: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = bases
        .iter()
        .flat_map(|b| (0..6).map(move |i| b + i))
        .collect();
    v.sort();
    v
}

/// Send a request with a path exactly as given (HTTP clients normalise `..` segments away, an
/// attacker's does not); returns the status code.
pub async fn raw_status(host: &TestHost, method: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Length: 1\r\nConnection: close\r\n\r\nx",
        host.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}
