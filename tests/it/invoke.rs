//! Every bundled reference plugin invoked as a real component through the HTTP API, on CSV,
//! NDJSON and Arrow input, with known expected outputs; plus the content negotiation and the
//! errors of bad input and bad config.

use crate::common;

use arrow_array::{Array, Float64Array, Int64Array, StringArray};
use common::*;

const ARROW: &str = "application/vnd.apache.arrow.stream";
const NDJSON: &str = "application/x-ndjson";

fn ipc_of_csv(csv: &str) -> Vec<u8> {
    aimass::platform::formats::to_ipc(aimass::platform::formats::Format::Csv, csv.as_bytes())
        .unwrap()
}

#[tokio::test]
async fn csv_collector_infers_types_from_csv_and_ndjson() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let csv = "id,name,score,ok\n1,ann,1.5,true\n2,bob,2.5,false\n";
    // CSV in, CSV out (default: same as input).
    let (status, ct, body) = invoke(host, "csv-collector", "", "text/csv", None, csv).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, "text/csv");
    assert_eq!(text(&body), csv);
    // CSV in, Arrow out: the inferred types.
    let (status, ct, body) = invoke(host, "csv-collector", "", "text/csv", Some(ARROW), csv).await;
    assert_eq!(status, 200);
    assert_eq!(ct, ARROW);
    let b = &batches(&body)[0];
    let types: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(types, ["Int64", "Utf8", "Float64", "Boolean"]);
    let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(names.value(1), "bob");
    // NDJSON in, NDJSON out.
    let nd = "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n";
    let (status, _, body) = invoke(host, "csv-collector", "", NDJSON, None, nd).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), nd);
    // A delimiter from config.
    let (status, _, body) = invoke(
        host,
        "csv-collector",
        "?delimiter=%3B",
        "text/csv",
        None,
        "a;b\n1;2\n",
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "a,b\n1,2\n");
    // Something it cannot read: the plugin says invalid input -> 422.
    let (status, _, body) =
        invoke(host, "csv-collector", "", "application/pdf", None, "%PDF").await;
    assert_eq!(status, 422);
    assert!(
        error_of(&body).contains("application/pdf"),
        "{}",
        error_of(&body)
    );
}

#[tokio::test]
async fn dedup_drops_duplicates_optionally_by_key() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let (status, _, body) = invoke(
        host,
        "dedup",
        "",
        "text/csv",
        None,
        "k,v\n1,a\n1,a\n2,b\n1,a\n",
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "k,v\n1,a\n2,b\n");
    let (status, _, body) = invoke(
        host,
        "dedup",
        "?keys=k",
        "text/csv",
        None,
        "k,v\n1,a\n1,b\n2,c\n",
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "k,v\n1,a\n2,c\n");
    // Arrow in, Arrow out.
    let (status, ct, body) =
        invoke(host, "dedup", "", ARROW, None, ipc_of_csv("k\n3\n3\n4\n")).await;
    assert_eq!(status, 200);
    assert_eq!(ct, ARROW);
    let col = batches(&body)
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect::<Vec<_>>();
    assert_eq!(col, vec![3, 4]);
    // Unknown key column: invalid config -> 400.
    let (status, _, body) = invoke(host, "dedup", "?keys=nope", "text/csv", None, "k\n1\n").await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("nope"));
}

#[tokio::test]
async fn drop_nulls_any_all_and_columns() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let csv = "a,b\n1,2\n,3\n4,\n5,6\n,\n";
    let (status, _, body) = invoke(host, "drop-nulls", "", "text/csv", None, csv).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "a,b\n1,2\n5,6\n");
    let (_, _, body) = invoke(host, "drop-nulls", "?columns=a", "text/csv", None, csv).await;
    assert_eq!(text(&body), "a,b\n1,2\n4,\n5,6\n");
    let (_, _, body) = invoke(host, "drop-nulls", "?how=all", "text/csv", None, csv).await;
    assert_eq!(text(&body), "a,b\n1,2\n,3\n4,\n5,6\n");
    let (status, _, _) = invoke(host, "drop-nulls", "?how=some", "text/csv", None, csv).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn outliers_zscore_and_iqr() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let mut csv = String::from("id,x\n");
    for (i, x) in [1, 2, 3, 4, 5, 6, 7, 8, 9, 100].iter().enumerate() {
        csv.push_str(&format!("{i},{x}\n"));
    }
    // Population z of 100 is 2.99: kept at the default threshold 3, dropped at 2.
    let (status, _, body) = invoke(
        host,
        "outliers",
        "?columns=x",
        "text/csv",
        None,
        csv.clone(),
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body).lines().count(), 11);
    let (_, _, body) = invoke(
        host,
        "outliers",
        "?columns=x&threshold=2",
        "text/csv",
        None,
        csv.clone(),
    )
    .await;
    assert!(!text(&body).contains(",100\n"));
    assert_eq!(text(&body).lines().count(), 10);
    // IQR: Q1 3.25, Q3 7.75, fences [-3.5, 14.5].
    let (_, _, body) = invoke(
        host,
        "outliers",
        "?method=iqr&columns=x",
        "text/csv",
        None,
        csv.clone(),
    )
    .await;
    assert_eq!(text(&body).lines().count(), 10);
    assert!(!text(&body).contains(",100\n"));
    let (status, _, body) = invoke(host, "outliers", "?method=median", "text/csv", None, csv).await;
    assert_eq!(status, 400, "{}", text(&body));
}

#[tokio::test]
async fn standard_scaler_fits_and_applies() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let csv = "x,y,label\n1,10,a\n2,20,b\n3,30,c\n";
    let resp = client()
        .post(host.url("/v1/plugins/standard-scaler/invoke"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .header("accept", ARROW)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let state_bytes: u64 = resp.headers()["x-aimass-state-bytes"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(state_bytes > 0);
    let b = batches(&resp.bytes().await.unwrap())[0].clone();
    let expect = [-1.224744871391589, 0.0, 1.224744871391589];
    for col in [0, 1] {
        let a = b
            .column(col)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for (i, e) in expect.iter().enumerate() {
            assert!(
                (a.value(i) - e).abs() < 1e-12,
                "col {col} row {i}: {}",
                a.value(i)
            );
        }
    }
    let labels = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(labels.value(2), "c");
}

#[tokio::test]
async fn negotiation_and_bad_input() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    // CSV in, NDJSON out.
    let (status, ct, body) = invoke(host, "dedup", "", "text/csv", Some(NDJSON), "a\n1\n1\n").await;
    assert_eq!(status, 200);
    assert_eq!(ct, NDJSON);
    assert_eq!(text(&body), "{\"a\":1}\n");
    // Not a table format.
    let (status, _, body) = invoke(host, "dedup", "", "text/plain", None, "hello").await;
    assert_eq!(status, 415);
    assert!(error_of(&body).contains("text/plain"));
    // Unproducible Accept.
    let (status, _, _) = invoke(host, "dedup", "", "text/csv", Some("text/html"), "a\n1\n").await;
    assert_eq!(status, 406);
    // Malformed inputs are caught by the host before the plugin runs.
    let (status, _, body) = invoke(host, "dedup", "", "text/csv", None, "a,b\n1,2,3\n").await;
    assert_eq!(status, 422);
    assert!(error_of(&body).contains("invalid CSV"));
    let (status, _, body) = invoke(host, "dedup", "", ARROW, None, "not arrow").await;
    assert_eq!(status, 422);
    assert!(error_of(&body).contains("Arrow IPC"));
    let (status, _, _) = invoke(host, "dedup", "", NDJSON, None, "{broken").await;
    assert_eq!(status, 422);
    // Unknown plugin.
    let (status, _, _) = invoke(host, "no-such-plugin", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn readme_example_plugin_runs() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    push(host, "min-filter", wasm("min-filter"), "").await;
    let csv = "name,age\nann,31\nbob,17\ncid,\ndee,18\n";
    let (status, _, body) = invoke(
        host,
        "min-filter",
        "?column=age&min=18",
        "text/csv",
        None,
        csv,
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(text(&body), "name,age\nann,31\ndee,18\n");
    let (status, _, body) = invoke(host, "min-filter", "?column=age", "text/csv", None, csv).await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("min"), "{}", error_of(&body));
}
