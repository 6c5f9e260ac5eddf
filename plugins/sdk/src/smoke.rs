//! Compile-and-call checks of every export macro (native, so the component exports themselves
//! are compiled out; the wasm build of the bundled plugins covers those). Each world's bindings
//! are generated in its own module, as a plugin crate would do at its root.

use crate::{Config, Error, Result, Table};

mod collector {
    use super::*;
    use crate::{Collector, Source};

    pub struct C;
    impl Collector for C {
        fn collect(input: Source, config: &Config) -> Result<Table> {
            config.check_keys(&[])?;
            Err(Error::invalid_input(input.media_type()))
        }
    }
    crate::export_collector!(C);

    #[test]
    fn guest_maps_types_and_errors() {
        use crate::__private::{PluginError, WitSource};
        use __aimass_bindings::Guest;
        let src = WitSource {
            content_type: "Text/Plain; x=y".into(),
            name: None,
            data: vec![1],
        };
        match <C as Guest>::collect(src, vec![]) {
            Err(PluginError::InvalidInput(m)) => assert_eq!(m, "text/plain"),
            other => panic!("{other:?}"),
        }
        let src = WitSource {
            content_type: String::new(),
            name: Some("n".into()),
            data: vec![],
        };
        let bad = vec![("k".to_string(), "v".to_string())];
        assert!(matches!(
            <C as Guest>::collect(src, bad),
            Err(PluginError::InvalidConfig(_))
        ));
    }
}

mod cleaner {
    use super::*;
    use crate::Cleaner;

    pub struct C;
    impl Cleaner for C {
        fn clean(input: Table, config: &Config) -> Result<Table> {
            if config.get("fail").is_some() {
                return Err(Error::internal("asked to fail"));
            }
            crate::log::info("cleaning");
            crate::progress(1, 1, "done");
            Ok(input)
        }
    }
    crate::export_cleaner!(C, "../../wit"); // the old out-of-tree form: the path is ignored

    #[test]
    fn guest_round_trips_ipc_and_maps_errors() {
        use crate::__private::PluginError;
        use __aimass_bindings::Guest;
        let schema = std::sync::Arc::new(arrow_schema::Schema::empty());
        let bytes = Table::empty(schema).to_ipc().unwrap();
        let out = <C as Guest>::clean(bytes, vec![]).unwrap();
        assert_eq!(Table::from_ipc(out).unwrap().num_columns(), 0);
        let fail = vec![("fail".to_string(), String::new())];
        let bytes = Table::from(arrow_schema::Schema::empty()).to_ipc().unwrap();
        assert!(
            matches!(<C as Guest>::clean(bytes, fail), Err(PluginError::Internal(m)) if m == "asked to fail")
        );
        assert!(matches!(
            <C as Guest>::clean(b"junk".to_vec(), vec![]),
            Err(PluginError::InvalidInput(_))
        ));
    }
}

mod raw_cleaner {
    use super::*;
    use crate::RawCleaner;

    pub struct C;
    impl RawCleaner for C {
        fn clean_raw(mut input: Vec<u8>, _config: &Config) -> Result<Vec<u8>> {
            input.reverse();
            Ok(input)
        }
    }
    crate::export_raw_cleaner!(C);

    #[test]
    fn guest_passes_bytes() {
        use __aimass_bindings::Guest;
        assert_eq!(
            <C as Guest>::clean(vec![1, 2, 3], vec![]).unwrap(),
            vec![3, 2, 1]
        );
    }
}

mod transform {
    use super::*;
    use crate::Transform;

    pub struct T;
    impl Transform for T {
        fn fit(data: Table, _config: &Config) -> Result<Vec<u8>> {
            Ok(data.num_rows().to_string().into_bytes())
        }
        fn apply(input: Table, state: &[u8], _config: &Config) -> Result<Table> {
            if state != b"0" {
                return Err(Error::invalid_input("bad state"));
            }
            Ok(input)
        }
    }
    crate::export_transform!(T);

    #[test]
    fn guest_fit_apply() {
        use crate::__private::PluginError;
        use __aimass_bindings::Guest;
        let bytes = Table::from(arrow_schema::Schema::empty()).to_ipc().unwrap();
        let state = <T as Guest>::fit(bytes.clone(), vec![]).unwrap();
        assert_eq!(state, b"0");
        assert!(<T as Guest>::apply(bytes.clone(), state, vec![]).is_ok());
        assert!(matches!(
            <T as Guest>::apply(bytes, b"1".to_vec(), vec![]),
            Err(PluginError::InvalidInput(_))
        ));
    }
}

mod trainer {
    use super::*;
    use crate::{Dataset, Model, Trainer};

    pub struct T;
    impl Trainer for T {
        fn train(data: &Dataset<'_>, config: &Config) -> Result<Model> {
            Ok(Model {
                onnx: vec![],
                metadata: vec![
                    ("rows".into(), data.row_count().to_string()),
                    ("label".into(), config.require("label")?.to_owned()),
                ],
            })
        }
    }
    crate::export_trainer!(T);

    #[test]
    fn trainer_runs_over_memory_dataset() {
        // The WIT reader resource only exists inside a host; the trait runs on MemoryDataset.
        let schema = std::sync::Arc::new(arrow_schema::Schema::empty());
        let source = crate::MemoryDataset::new(Table::empty(schema));
        let config = Config::from_pairs([("label", "y")]);
        let model = T::train(&Dataset::new(&source), &config).unwrap();
        assert_eq!(model.metadata[0], ("rows".to_string(), "0".to_string()));
        assert!(T::train(&Dataset::new(&source), &Config::default()).is_err());
    }
}
