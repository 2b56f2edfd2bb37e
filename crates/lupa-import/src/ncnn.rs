//! A reader for ncnn models: the `.param` text graph and the `.bin` weight blob.
//!
//! Format as documented in ncnn's wiki ("param and model file structure") and its
//! `src/modelbin.cpp`: tagged weights for convolutions (f16 tag `0x01306B47`, f32 tags `0` and
//! `0x0002C056`), raw little-endian f32 for biases, PReLU slopes and MemoryData. The reader consumes
//! the `.bin` to the exact byte and fails otherwise.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};

/// Magic number on the first line of a `.param` file.
const MAGIC: u32 = 7_767_517;
const TAG_F16: u32 = 0x0130_6B47;
const TAG_F32: [u32; 2] = [0, 0x0002_C056];
const TAG_I8: u32 = 0x000D_4B38;

/// A value of a `key=value` layer parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A plain integer.
    Int(i64),
    /// A plain float.
    Float(f32),
    /// An array (`-23300 - id = n,v1,...,vn`), kept as floats.
    Array(Vec<f32>),
}

/// Weight values as stored: f16 bits or f32.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobData {
    /// IEEE half-precision bit patterns.
    F16(Vec<u16>),
    /// Single precision.
    F32(Vec<f32>),
}

impl BlobData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    /// Values widened to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Self::F16(v) => v.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect(),
            Self::F32(v) => v.clone(),
        }
    }
}

/// A weight tensor of a layer with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// Shape in Burn's order (for convolutions `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// The values.
    pub data: BlobData,
}

impl Blob {
    /// The same values seen with another shape of as many elements.
    ///
    /// # Panics
    /// If the element counts differ.
    pub fn reshaped(&self, shape: Vec<usize>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), self.data.len(), "reshape to {shape:?}");
        Self { shape, data: self.data.clone() }
    }

    /// Swaps the first two axes of a 4-D blob: `[a][b][h][w]` → `[b][a][h][w]`.
    ///
    /// # Panics
    /// If the blob is not 4-D.
    pub fn swap_first_axes(&self) -> Self {
        let [a, b, h, w] = self.shape[..] else {
            panic!("swap_first_axes needs 4 axes, got {:?}", self.shape)
        };
        let source = |i: usize| {
            let (j, rest) = (i / (a * h * w), i % (a * h * w));
            let (k, inner) = (rest / (h * w), rest % (h * w));
            (k * b + j) * h * w + inner
        };
        let data = match &self.data {
            BlobData::F16(v) => BlobData::F16((0..v.len()).map(|i| v[source(i)]).collect()),
            BlobData::F32(v) => BlobData::F32((0..v.len()).map(|i| v[source(i)]).collect()),
        };
        Self { shape: vec![b, a, h, w], data }
    }
}

/// One layer of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// ncnn layer type, e.g. `Convolution`.
    pub kind: String,
    /// Layer name (often the ONNX node path).
    pub name: String,
    /// Input blob names.
    pub inputs: Vec<String>,
    /// Output blob names.
    pub outputs: Vec<String>,
    /// `key=value` parameters.
    pub params: BTreeMap<i32, ParamValue>,
    /// Weights in file order: for convolutions `[weight, bias?]`.
    pub blobs: Vec<Blob>,
}

impl Layer {
    /// Integer parameter `key`, or `default`.
    pub fn int(&self, key: i32, default: i64) -> i64 {
        match self.params.get(&key) {
            Some(ParamValue::Int(v)) => *v,
            Some(ParamValue::Float(v)) => *v as i64,
            _ => default,
        }
    }

    /// Float parameter `key`, or `default`.
    pub fn float(&self, key: i32, default: f32) -> f32 {
        match self.params.get(&key) {
            Some(ParamValue::Float(v)) => *v,
            Some(ParamValue::Int(v)) => *v as f32,
            _ => default,
        }
    }

    /// Array parameter `key` (empty when absent).
    pub fn array(&self, key: i32) -> &[f32] {
        match self.params.get(&key) {
            Some(ParamValue::Array(v)) => v,
            _ => &[],
        }
    }
}

/// A whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct NcnnModel {
    /// Layers in file order.
    pub layers: Vec<Layer>,
}

impl NcnnModel {
    /// Layers of one type, in file order.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Layer> + 'a {
        self.layers.iter().filter(move |l| l.kind == kind)
    }

    /// Parses a `.param` text and its `.bin`.
    ///
    /// # Errors
    /// On a bad magic number, malformed lines, unsupported layer types or weight tags, and when the
    /// `.bin` is not consumed exactly.
    pub fn parse(param: &str, bin: &[u8]) -> Result<Self> {
        let mut lines = param.lines().filter(|l| !l.trim().is_empty());
        let magic: u32 = lines.next().context("empty .param")?.trim().parse().context("magic")?;
        ensure!(magic == MAGIC, "not an ncnn .param (magic {magic}, expected {MAGIC})");
        let counts: Vec<usize> = lines
            .next()
            .context("missing layer/blob count line")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("layer/blob counts")?;
        ensure!(counts.len() == 2, "second line must hold layer and blob counts");

        let mut reader = BinReader { bin, pos: 0 };
        let mut layers = Vec::with_capacity(counts[0]);
        for (i, line) in lines.enumerate() {
            let mut layer = parse_layer(line).with_context(|| format!("layer line {}", i + 3))?;
            layer.blobs = read_blobs(&layer, &mut reader)
                .with_context(|| format!("weights of {} `{}`", layer.kind, layer.name))?;
            layers.push(layer);
        }
        ensure!(layers.len() == counts[0], "header says {} layers, found {}", counts[0], layers.len());
        ensure!(reader.pos == bin.len(), ".bin has {} bytes, the graph consumes {}", bin.len(), reader.pos);
        Ok(Self { layers })
    }
}

fn parse_layer(line: &str) -> Result<Layer> {
    let mut words = line.split_whitespace();
    let mut next = |what: &str| words.next().with_context(|| format!("missing {what}"));
    let kind = next("type")?.to_owned();
    let name = next("name")?.to_owned();
    let n_in: usize = next("input count")?.parse()?;
    let n_out: usize = next("output count")?.parse()?;
    let inputs = (0..n_in).map(|_| next("input").map(str::to_owned)).collect::<Result<_>>()?;
    let outputs = (0..n_out).map(|_| next("output").map(str::to_owned)).collect::<Result<_>>()?;
    let mut params = BTreeMap::new();
    for word in words {
        let (key, value) = word.split_once('=').with_context(|| format!("bad parameter `{word}`"))?;
        let key: i32 = key.parse().with_context(|| format!("bad parameter key `{key}`"))?;
        let value = if key <= -23300 {
            let mut items = value.split(',');
            let n: usize = items.next().unwrap_or("0").parse()?;
            let values: Vec<f32> = items.map(str::parse).collect::<Result<_, _>>()?;
            ensure!(values.len() == n, "array parameter {key} announces {n} values, has {}", values.len());
            (-key - 23300, ParamValue::Array(values))
        } else if value.contains(['.', 'e', 'E']) {
            (key, ParamValue::Float(value.parse()?))
        } else {
            (key, ParamValue::Int(value.parse()?))
        };
        params.insert(value.0, value.1);
    }
    Ok(Layer { kind, name, inputs, outputs, params, blobs: Vec::new() })
}

struct BinReader<'a> {
    bin: &'a [u8],
    pos: usize,
}

impl BinReader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bin.len()).with_context(|| {
            format!(
                "unexpected end of .bin: need {n} bytes at offset {}, file has {}",
                self.pos,
                self.bin.len()
            )
        })?;
        let bytes = &self.bin[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// Raw little-endian f32 values (ncnn `load(w, 1)`).
    fn raw_f32(&mut self, n: usize) -> Result<Vec<f32>> {
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    /// A tagged weight (ncnn `load(w, 0)`).
    fn tagged(&mut self, n: usize) -> Result<BlobData> {
        let tag = self.u32()?;
        match tag {
            TAG_F16 => {
                let bytes = self.take(n * 2)?;
                let values = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                // f16 data is padded to a multiple of 4 bytes.
                self.take((4 - (n * 2) % 4) % 4)?;
                Ok(BlobData::F16(values))
            }
            t if TAG_F32.contains(&t) => Ok(BlobData::F32(self.raw_f32(n)?)),
            TAG_I8 => bail!("int8-quantised weights are not supported"),
            t => bail!("unknown weight tag {t:#010x}"),
        }
    }
}

/// Layer types that carry no weights in the `.bin`.
const WEIGHTLESS: &[&str] = &[
    "Input",
    "Split",
    "Concat",
    "Eltwise",
    "BinaryOp",
    "UnaryOp",
    "Interp",
    "PixelShuffle",
    "Sigmoid",
    "Swish",
    "ReLU",
    "Crop",
    "Padding",
    "Pooling",
    "Reshape",
    "Flatten",
    "Softmax",
    "Clip",
    "Noop",
];

fn read_blobs(layer: &Layer, bin: &mut BinReader) -> Result<Vec<Blob>> {
    let count = |key| -> Result<usize> {
        usize::try_from(layer.int(key, 0)).with_context(|| format!("negative count in parameter {key}"))
    };
    match layer.kind.as_str() {
        "Convolution" | "Deconvolution" => {
            let out = count(0)?;
            let kw = count(1)?;
            let kh = usize::try_from(layer.int(11, kw as i64))?;
            let n = count(6)?;
            ensure!(out > 0 && kw > 0 && kh > 0, "zero output channels or kernel size");
            ensure!(n % (out * kh * kw) == 0, "weight count {n} is not a multiple of {out}·{kh}·{kw}");
            let inp = n / (out * kh * kw);
            let data = bin.tagged(n)?;
            // ncnn stores both as [out][in][kh][kw]; Burn's ConvTranspose2d wants [in][out][kh][kw],
            // a transposition the model mapping does where it uses deconvolutions.
            let mut blobs = vec![Blob { shape: vec![out, inp, kh, kw], data }];
            if layer.int(5, 0) != 0 {
                blobs.push(Blob { shape: vec![out], data: BlobData::F32(bin.raw_f32(out)?) });
            }
            Ok(blobs)
        }
        "InnerProduct" => {
            let out = count(0)?;
            let n = count(2)?;
            ensure!(out > 0 && n % out == 0, "weight count {n} is not a multiple of {out}");
            let mut blobs = vec![Blob { shape: vec![out, n / out], data: bin.tagged(n)? }];
            if layer.int(1, 0) != 0 {
                blobs.push(Blob { shape: vec![out], data: BlobData::F32(bin.raw_f32(out)?) });
            }
            Ok(blobs)
        }
        "PReLU" => {
            let n = count(0)?;
            Ok(vec![Blob { shape: vec![n], data: BlobData::F32(bin.raw_f32(n)?) }])
        }
        "MemoryData" => {
            let dims: Vec<usize> = [2, 1, 0].iter().map(|&k| count(k)).collect::<Result<_>>()?;
            let shape: Vec<usize> = dims.into_iter().filter(|&d| d > 0).collect();
            let n = shape.iter().product();
            Ok(vec![Blob { shape, data: BlobData::F32(bin.raw_f32(n)?) }])
        }
        kind if WEIGHTLESS.contains(&kind) => Ok(Vec::new()),
        kind => bail!("unsupported ncnn layer type `{kind}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(values: &[f32]) -> Vec<u8> {
        let mut out = TAG_F16.to_le_bytes().to_vec();
        for v in values {
            out.extend(half::f16::from_f32(*v).to_bits().to_le_bytes());
        }
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    const PARAM: &str = "7767517\n4 4\n\
        Input in 0 1 data\n\
        Convolution conv 1 1 data c 0=1 1=3 11=1 4=1 5=1 6=3 9=2 -23310=1,2.000000e-01\n\
        PReLU act 1 1 c a 0=1\n\
        BinaryOp add 1 1 a output 0=0 1=1 2=5.000000e-01\n";

    fn bin() -> Vec<u8> {
        // 3 f16 weights: 6 bytes + 2 bytes padding after the tag; then a bias and a slope.
        [f16_bytes(&[0.5, -1.0, 2.0]), f32_bytes(&[0.25]), f32_bytes(&[0.1])].concat()
    }

    #[test]
    fn parses_layers_params_and_weights() {
        let model = NcnnModel::parse(PARAM, &bin()).unwrap();
        assert_eq!(model.layers.len(), 4);
        let conv = &model.layers[1];
        assert_eq!(conv.kind, "Convolution");
        assert_eq!((conv.int(0, 0), conv.int(1, 0), conv.int(11, 0)), (1, 3, 1));
        assert_eq!(conv.array(10), &[0.2]);
        assert_eq!(conv.blobs[0].shape, vec![1, 1, 1, 3]);
        assert_eq!(conv.blobs[0].data.to_f32(), vec![0.5, -1.0, 2.0]);
        assert_eq!(conv.blobs[1].data, BlobData::F32(vec![0.25]));
        assert_eq!(model.layers[2].blobs[0].data, BlobData::F32(vec![0.1]));
        assert_eq!(model.layers[3].float(2, 0.0), 0.5);
    }

    #[test]
    fn swaps_the_first_two_axes() {
        // [2][3][1][2] with values equal to their flat index.
        let blob = Blob { shape: vec![2, 3, 1, 2], data: BlobData::F32((0..12).map(|i| i as f32).collect()) };
        let swapped = blob.swap_first_axes();
        assert_eq!(swapped.shape, vec![3, 2, 1, 2]);
        // swapped[k][j][0][x] = blob[j][k][0][x] = j·6 + k·2 + x
        let expected = [0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11.];
        assert_eq!(swapped.data, BlobData::F32(expected.to_vec()));
        assert_eq!(swapped.swap_first_axes(), blob);
    }

    #[test]
    fn rejects_trailing_or_missing_bytes() {
        let mut long = bin();
        long.extend([0, 0, 0, 0]);
        let err = NcnnModel::parse(PARAM, &long).unwrap_err().to_string();
        assert!(err.contains("consumes"), "{err}");
        let short = &bin()[..bin().len() - 2];
        assert!(NcnnModel::parse(PARAM, short).is_err());
    }

    #[test]
    fn rejects_bad_magic_unknown_layers_and_int8() {
        assert!(NcnnModel::parse("123\n0 0\n", &[]).is_err());
        let unknown = "7767517\n1 1\nMysteryOp m 0 1 x\n";
        let err = format!("{:#}", NcnnModel::parse(unknown, &[]).unwrap_err());
        assert!(err.contains("unsupported ncnn layer type `MysteryOp`"), "{err}");
        let int8 = [TAG_I8.to_le_bytes().to_vec(), vec![0; 4]].concat();
        let conv = "7767517\n1 1\nConvolution c 0 1 x 0=1 1=1 6=3\n";
        let err = format!("{:#}", NcnnModel::parse(conv, &int8).unwrap_err());
        assert!(err.contains("int8"), "{err}");
    }
}
