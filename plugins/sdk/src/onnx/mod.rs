//! A small ONNX model builder for trainers.
//!
//! Trainers emit models made of standard `ai.onnx` operators (MatMul/Gemm, Add, Relu, Sigmoid,
//! Softmax, ArgMax...) that tract optimises well. The builder names tensors, keeps weights as
//! initializers and encodes the `ModelProto` with prost; the message types are in [`proto`].
//!
//! ```
//! use aimass_plugin_sdk::onnx::{Dim, ElemType, GraphBuilder};
//! // probability = sigmoid(features · w + b), for a batch of N rows of 2 features.
//! let mut g = GraphBuilder::new("logreg");
//! g.input("features", ElemType::F32, &[Dim::named("N"), Dim::Fixed(2)]);
//! g.initializer_f32("w", &[2, 1], &[0.5, -1.0]);
//! g.initializer_f32("b", &[1], &[0.25]);
//! g.node("MatMul", &["features", "w"], &["z0"], vec![]);
//! g.node("Add", &["z0", "b"], &["z"], vec![]);
//! g.node("Sigmoid", &["z"], &["probability"], vec![]);
//! g.output("probability", ElemType::F32, &[Dim::named("N"), Dim::Fixed(1)]);
//! let bytes: Vec<u8> = g.build();
//! assert!(!bytes.is_empty());
//! ```

pub mod proto;

use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_type, data_type,
    type_proto,
};

/// ONNX IR version written (ONNX 1.10+ readers, tract included, accept it).
pub const IR_VERSION: i64 = 8;
/// Default `ai.onnx` opset: 13 has every operator the bundled trainers use, with `axes` of
/// reductions still attributes.
pub const OPSET: i64 = 13;

/// Element type of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I32,
    I64,
    Bool,
}

impl ElemType {
    fn code(self) -> i32 {
        match self {
            ElemType::F32 => data_type::FLOAT,
            ElemType::F64 => data_type::DOUBLE,
            ElemType::I32 => data_type::INT32,
            ElemType::I64 => data_type::INT64,
            ElemType::Bool => data_type::BOOL,
        }
    }
}

/// One dimension of a declared shape: fixed, or a named symbol such as the batch size `N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

impl Dim {
    pub fn named(name: &str) -> Dim {
        Dim::Named(name.to_string())
    }
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    String(String),
}

/// `(name, value)` for [`GraphBuilder::node`].
pub fn attr(name: &str, value: Attr) -> (String, Attr) {
    (name.to_string(), value)
}

/// Builds one graph and the model around it.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: GraphProto,
    metadata: Vec<StringStringEntryProto>,
    opset: i64,
}

fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
                Dim::Named(s) => dimension::Value::DimParam(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem.code(),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            metadata: Vec::new(),
            opset: OPSET,
        }
    }

    /// Use another `ai.onnx` opset version than [`OPSET`].
    pub fn opset(&mut self, version: i64) -> &mut Self {
        self.opset = version;
        self
    }

    /// Declare a graph input.
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(value_info(name, elem, dims));
        self
    }

    /// Declare a graph output (a tensor some node produces).
    pub fn output(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> &mut Self {
        self.graph.output.push(value_info(name, elem, dims));
        self
    }

    /// A constant f32 tensor (weights), row-major. Panics if `data` does not fill `dims`: that
    /// is a bug in the trainer, not bad input.
    pub fn initializer_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        self.initializer(name, dims, data.len(), |t| {
            t.data_type = data_type::FLOAT;
            t.float_data = data.to_vec();
        })
    }

    /// A constant i64 tensor (shapes, axes, class labels).
    pub fn initializer_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        self.initializer(name, dims, data.len(), |t| {
            t.data_type = data_type::INT64;
            t.int64_data = data.to_vec();
        })
    }

    fn initializer(
        &mut self,
        name: &str,
        dims: &[i64],
        len: usize,
        fill: impl FnOnce(&mut TensorProto),
    ) -> &mut Self {
        let n: i64 = dims.iter().product();
        assert_eq!(
            n as usize, len,
            "initializer {name}: dims {dims:?} need {n} values"
        );
        let mut t = TensorProto {
            dims: dims.to_vec(),
            name: name.to_string(),
            ..Default::default()
        };
        fill(&mut t);
        self.graph.initializer.push(t);
        self
    }

    /// An `ai.onnx` operator node.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(String, Attr)>,
    ) -> &mut Self {
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto {
                    name,
                    ..Default::default()
                };
                match a {
                    Attr::Int(i) => (p.i, p.r#type) = (i, attribute_type::INT),
                    Attr::Float(f) => (p.f, p.r#type) = (f, attribute_type::FLOAT),
                    Attr::Ints(v) => (p.ints, p.r#type) = (v, attribute_type::INTS),
                    Attr::Floats(v) => (p.floats, p.r#type) = (v, attribute_type::FLOATS),
                    Attr::String(s) => (p.s, p.r#type) = (s.into_bytes(), attribute_type::STRING),
                }
                p
            })
            .collect();
        let index = self.graph.node.len();
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: format!("{op_type}_{index}"),
            op_type: op_type.to_string(),
            attribute,
            domain: String::new(),
        });
        self
    }

    /// A `metadata_props` entry (e.g. feature names, label classes), kept with the model.
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push(StringStringEntryProto {
            key: key.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// The model proto.
    pub fn model(&self) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            producer_name: "aimass-plugin-sdk".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            model_version: 1,
            graph: Some(self.graph.clone()),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            metadata_props: self.metadata.clone(),
            ..Default::default()
        }
    }

    /// The encoded `.onnx` bytes.
    pub fn build(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.model())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn round_trips_through_the_protobuf_encoding() {
        let mut g = GraphBuilder::new("g");
        g.input("x", ElemType::F32, &[Dim::named("N"), Dim::Fixed(3)])
            .initializer_f32("w", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .initializer_i64("classes", &[2], &[0, 1])
            .node("MatMul", &["x", "w"], &["logits"], vec![])
            .node(
                "Softmax",
                &["logits"],
                &["probabilities"],
                vec![attr("axis", Attr::Int(1))],
            )
            .node(
                "ArgMax",
                &["probabilities"],
                &["label"],
                vec![attr("axis", Attr::Int(1)), attr("keepdims", Attr::Int(0))],
            )
            .output(
                "probabilities",
                ElemType::F32,
                &[Dim::named("N"), Dim::Fixed(2)],
            )
            .output("label", ElemType::I64, &[Dim::named("N")])
            .metadata("features", "a,b,c");
        let bytes = g.build();
        let back = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, g.model());
        assert_eq!(back.ir_version, IR_VERSION);
        assert_eq!(back.opset_import[0].version, OPSET);
        let graph = back.graph.unwrap();
        assert_eq!(graph.node.len(), 3);
        assert_eq!(graph.node[2].attribute[1].name, "keepdims");
        assert_eq!(graph.node[2].attribute[1].r#type, attribute_type::INT);
        assert_eq!(graph.initializer[0].float_data.len(), 6);
        assert_eq!(back.metadata_props[0].value, "a,b,c");
    }

    #[test]
    #[should_panic(expected = "need 4 values")]
    fn initializer_size_is_checked() {
        GraphBuilder::new("g").initializer_f32("w", &[2, 2], &[1.0]);
    }
}
