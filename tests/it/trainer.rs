//! The `trainer` world's host side: a real trainer component (`plugins/dataset-probe`) reads a
//! dataset batch by batch through the host's `dataset.reader` resource, rewinds for epochs and
//! reports progress. Running training jobs is the model-building feature; this proves the
//! contract it will use.

use crate::common;

use aimass::platform::formats::{Format, decode_ipc, encode_ipc, to_ipc};
use aimass::runtime::DatasetReader;
use aimass::runtime::EngineOptions;
use aimass::runtime::Limits;
use aimass::runtime::Runtime;
use aimass::runtime::World;
use aimass::runtime::{Call, InvokeError, Target, invoke};
use common::*;
use std::sync::Arc;

/// A reader over `csv` split into batches of `rows_per_batch`, claiming `rows` rows.
fn reader(csv: &str, rows_per_batch: usize, rows: u64) -> DatasetReader {
    let (schema, batches) = decode_ipc(&to_ipc(Format::Csv, csv.as_bytes()).unwrap()).unwrap();
    let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < all.num_rows() {
        let len = rows_per_batch.min(all.num_rows() - offset);
        parts.push(encode_ipc(&schema, &[all.slice(offset, len)]).unwrap());
        offset += len;
    }
    DatasetReader {
        schema: encode_ipc(&schema, &[]).unwrap(),
        batches: Arc::new(parts),
        rows,
        cursor: 0,
        watch: None,
    }
}

#[tokio::test]
async fn trainer_reads_batches_rewinds_and_reports_progress() {
    let _turn = crate::common::serial::together().await;
    let rt = Runtime::new(&EngineOptions::default()).unwrap();
    let compiled = rt.compile(&wasm("dataset-probe")).unwrap();
    assert_eq!(compiled.prepared.world(), World::Trainer);
    let name: Arc<str> = "probe".into();
    let target = || Target {
        name: &name,
        version: 1,
        prepared: &compiled.prepared,
        limits: Limits::default(),
        caps: Default::default(),
    };
    let csv = "x,y\n1,a\n2,b\n3,c\n4,d\n5,e\n6,f\n7,g\n";
    let config = vec![("epochs".to_string(), "3".to_string())];
    let (result, _) = invoke(
        rt.engine(),
        true,
        target(),
        Call::Train(reader(csv, 3, 7)),
        config.clone(),
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(outcome.output, b"probe:7");
    let meta: std::collections::HashMap<_, _> = outcome.metadata.into_iter().collect();
    assert_eq!(meta["batches"], "3");
    assert_eq!(meta["epochs"], "3");
    assert_eq!(meta["columns"], "2");
    assert_eq!(outcome.progress.done, 3);
    assert_eq!(outcome.progress.total, 3);
    assert_eq!(outcome.progress.message, "epoch 3/3");

    // A reader whose row count disagrees with its batches: the trainer's check fires.
    let (result, _) = invoke(
        rt.engine(),
        true,
        target(),
        Call::Train(reader(csv, 3, 8)),
        config,
    )
    .await;
    match result {
        Err(InvokeError::InvalidInput(m)) => assert!(m.contains("row-count says 8"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn trainers_upload_but_are_not_invoked_directly() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let up = push(host, "probe", wasm("dataset-probe"), "").await;
    assert_eq!(up["world"], "trainer");
    let (status, _, body) = common::invoke(host, "probe", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("trainer"), "{}", error_of(&body));
}
