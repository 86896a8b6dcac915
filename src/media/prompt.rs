//! IVR prompts (R27): the standard's scripts as 8 kHz mono 16-bit WAV files, cut into the
//! 20 ms frames the media task sends, and the [`PromptLibrary`] of one prompts
//! directory that dialplans name their prompts from. Loading reads files; everything
//! else is pure.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::rtp::MediaError;
use crate::recording::FRAME_SAMPLES;

/// The only sample rate the engine plays: G.711's.
pub const PROMPT_SAMPLE_RATE: u32 = 8000;

/// Prompts are short scripts; anything longer is a wrong file, not a prompt, and would
/// only waste memory shared by every call.
const MAX_PROMPT_SECONDS: u32 = 600;

/// A loaded prompt: 8 kHz mono samples, shared read-only between calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The file name it was loaded from (`a.wav+b.wav` for a sequence), for logs and
    /// traces; empty for generated prompts.
    name: String,
    samples: Vec<i16>,
}

impl Prompt {
    /// Loads a WAV file, which must be 8000 Hz, mono, 16-bit integer PCM.
    pub fn load(path: impl AsRef<Path>) -> Result<Prompt, MediaError> {
        let path = path.as_ref();
        let unreadable = |source| MediaError::PromptUnreadable {
            path: path.to_path_buf(),
            source,
        };
        let wrong_format = |problem: String| MediaError::PromptFormat {
            path: path.to_path_buf(),
            problem,
        };
        let mut reader = hound::WavReader::open(path).map_err(unreadable)?;
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int {
            return Err(wrong_format("samples are floating point".to_string()));
        }
        if spec.bits_per_sample != 16 {
            return Err(wrong_format(format!(
                "{} bits per sample",
                spec.bits_per_sample
            )));
        }
        if spec.channels != 1 {
            return Err(wrong_format(format!("{} channels", spec.channels)));
        }
        if spec.sample_rate != PROMPT_SAMPLE_RATE {
            return Err(wrong_format(format!("sample rate {} Hz", spec.sample_rate)));
        }
        if reader.duration() > MAX_PROMPT_SECONDS * PROMPT_SAMPLE_RATE {
            return Err(wrong_format(format!(
                "{} s long, more than the {MAX_PROMPT_SECONDS} s a prompt may last",
                reader.duration() / PROMPT_SAMPLE_RATE
            )));
        }
        let samples = reader
            .samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(unreadable)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Prompt { name, samples })
    }

    /// A prompt from samples already at 8 kHz (tests, generated tones).
    pub fn from_samples(samples: Vec<i16>) -> Prompt {
        Prompt {
            name: String::new(),
            samples,
        }
    }

    /// A generated prompt with a name, as if loaded from a file of that name.
    pub fn named(name: impl Into<String>, samples: Vec<i16>) -> Prompt {
        Prompt {
            name: name.into(),
            samples,
        }
    }

    /// The file it came from (`a.wav+b.wav` for a sequence); empty when generated.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Playing time at 8 kHz.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(PROMPT_SAMPLE_RATE))
    }

    /// Number of 20 ms frames, the last one possibly partial.
    pub fn frame_count(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }

    /// Frame `index`, zero-padded at the end; silence past the end.
    pub fn frame(&self, index: usize) -> [i16; FRAME_SAMPLES] {
        let mut frame = [0; FRAME_SAMPLES];
        let start = index.saturating_mul(FRAME_SAMPLES);
        if let Some(rest) = self.samples.get(start..) {
            let len = rest.len().min(FRAME_SAMPLES);
            frame[..len].copy_from_slice(&rest[..len]);
        }
        frame
    }
}

/// Every prompt of one prompts directory, by file name: what dialplans and feature codes
/// play. Loaded whole at start-up and on reload (a few dozen short files), so a call
/// never touches the disk, and the dialplan validator asks it whether a prompt exists.
#[derive(Clone, Debug, Default)]
pub struct PromptLibrary {
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// Loads every `*.wav` in `dir`; one that is not 8 kHz mono 16-bit stops the load with
    /// its path and the reason. Other files (a README) are ignored.
    pub fn load_dir(dir: &Path) -> Result<PromptLibrary, MediaError> {
        let unreadable = |source: std::io::Error| MediaError::PromptUnreadable {
            path: dir.to_path_buf(),
            source: hound::Error::IoError(source),
        };
        let mut prompts = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            let is_wav = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if !is_wav || !path.is_file() {
                continue;
            }
            let prompt = Prompt::load(&path)?;
            prompts.insert(prompt.name.clone(), Arc::new(prompt));
        }
        Ok(PromptLibrary { prompts })
    }

    /// A library of prompts already made (tests, the simulation).
    pub fn from_prompts(prompts: impl IntoIterator<Item = Arc<Prompt>>) -> PromptLibrary {
        PromptLibrary {
            prompts: prompts.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    /// Adds a prompt (or replaces the one of the same name).
    pub fn insert(&mut self, prompt: Arc<Prompt>) {
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(name).cloned()
    }

    /// The names in `required` that the library lacks.
    pub fn missing<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        required
            .into_iter()
            .filter(|name| !self.contains(name))
            .collect()
    }

    /// `names` played one after another, as one prompt (one prompt is shared, not
    /// copied). Names the library lacks are left out: the validator has checked the
    /// dialplan's, so a gap here is a file removed since, and silence beats a dead call.
    pub fn sequence(&self, names: &[String]) -> Arc<Prompt> {
        let found: Vec<Arc<Prompt>> = names
            .iter()
            .filter_map(|name| {
                let prompt = self.get(name);
                if prompt.is_none() {
                    tracing::warn!(prompt = %name, "prompt missing from the library");
                }
                prompt
            })
            .collect();
        if let [only] = found.as_slice() {
            return Arc::clone(only);
        }
        let samples = found
            .iter()
            .flat_map(|p| p.samples.iter().copied())
            .collect();
        let name = found
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        Arc::new(Prompt { name, samples })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write_wav(path: &Path, spec: hound::WavSpec, samples: usize) {
        let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
        for i in 0..samples {
            match spec.sample_format {
                hound::SampleFormat::Float => writer.write_sample(0.5f32).expect("write"),
                hound::SampleFormat::Int if spec.bits_per_sample == 8 => {
                    writer.write_sample(i as i8).expect("write")
                }
                hound::SampleFormat::Int => writer.write_sample(i as i16).expect("write"),
            }
        }
        writer.finalize().expect("finalize");
    }

    fn good_spec() -> hound::WavSpec {
        hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_8khz_mono_16bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ok.wav");
        write_wav(&path, good_spec(), 400);
        let prompt = Prompt::load(&path).expect("valid prompt");
        assert_eq!(prompt.samples().len(), 400);
        assert_eq!(prompt.samples()[399], 399);
        assert_eq!(prompt.duration(), Duration::from_millis(50));
    }

    #[test]
    fn names_the_wrong_property_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (
                hound::WavSpec {
                    sample_rate: 16000,
                    ..good_spec()
                },
                "sample rate 16000 Hz",
            ),
            (
                hound::WavSpec {
                    channels: 2,
                    ..good_spec()
                },
                "2 channels",
            ),
            (
                hound::WavSpec {
                    bits_per_sample: 8,
                    ..good_spec()
                },
                "8 bits per sample",
            ),
            (
                hound::WavSpec {
                    bits_per_sample: 32,
                    sample_format: hound::SampleFormat::Float,
                    ..good_spec()
                },
                "floating point",
            ),
        ];
        for (i, (spec, expected)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.wav"));
            write_wav(&path, spec, 16);
            let message = Prompt::load(&path).expect_err("wrong format").to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains(&format!("bad{i}.wav")), "{message}");
        }
    }

    #[test]
    fn missing_and_garbage_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.wav");
        let message = Prompt::load(&missing).expect_err("missing").to_string();
        assert!(message.contains("missing.wav"), "{message}");
        let garbage = dir.path().join("garbage.wav");
        std::fs::write(&garbage, b"RIFF\x10\x00\x00\x00WAVEjunkjunk").expect("write");
        assert!(matches!(
            Prompt::load(&garbage),
            Err(MediaError::PromptUnreadable { .. })
        ));
    }

    #[test]
    fn frames_are_zero_padded_and_silent_past_the_end() {
        let prompt = Prompt::from_samples((1..=400).collect());
        assert_eq!(prompt.frame_count(), 3);
        assert_eq!(prompt.frame(0)[0], 1);
        assert_eq!(prompt.frame(1)[0], 161);
        let last = prompt.frame(2);
        assert_eq!(last[79], 400);
        assert!(last[80..].iter().all(|&s| s == 0));
        assert_eq!(prompt.frame(3), [0; FRAME_SAMPLES]);
        assert_eq!(prompt.frame(usize::MAX), [0; FRAME_SAMPLES]);
        assert_eq!(Prompt::from_samples(Vec::new()).frame_count(), 0);
    }

    /// R27: every committed prompt is playable by the media task.
    #[test]
    fn committed_prompts_are_8khz_mono_audible_and_short_r27() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplans/prompts");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("dialplans/prompts exists")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wav"))
            .collect();
        paths.sort();
        for name in [
            "greeting",
            "no-input",
            "no-input-goodbye",
            "out-of-scope",
            "nuisance-warning",
            "closing",
            "survey-invitation",
            "queue-wait",
            "callback-offer",
            "position-prefix",
            "position-suffix",
            "digit-0",
            "digit-9",
        ] {
            assert!(
                paths
                    .iter()
                    .any(|p| p.file_stem().is_some_and(|s| s == name)),
                "{name}.wav is missing"
            );
        }
        for path in &paths {
            let prompt = Prompt::load(path).unwrap_or_else(|e| panic!("{e}"));
            let peak = prompt
                .samples()
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap_or(0);
            assert!(peak > 1000, "{} is silent (peak {peak})", path.display());
            assert!(
                prompt.duration() < Duration::from_secs(15),
                "{} lasts {:?}",
                path.display(),
                prompt.duration()
            );
        }
    }

    #[test]
    fn the_library_loads_a_directory_and_plays_sequences() {
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("a.wav"), good_spec(), 160);
        write_wav(&dir.path().join("b.wav"), good_spec(), 80);
        std::fs::write(dir.path().join("README.md"), "not a prompt").unwrap();
        let library = PromptLibrary::load_dir(dir.path()).expect("library");
        assert!(library.contains("a.wav") && library.contains("b.wav"));
        assert!(!library.contains("README.md"));
        assert_eq!(library.missing(["a.wav", "c.wav"]), ["c.wav"]);
        let one = library.sequence(&["a.wav".to_owned()]);
        assert!(Arc::ptr_eq(&one, &library.get("a.wav").unwrap()));
        let both = library.sequence(&["a.wav".into(), "gone.wav".into(), "b.wav".into()]);
        assert_eq!(both.name(), "a.wav+b.wav");
        assert_eq!(both.samples().len(), 240);
        assert_eq!(
            &both.samples()[160..],
            library.get("b.wav").unwrap().samples()
        );

        let mut bad = good_spec();
        bad.sample_rate = 16000;
        write_wav(&dir.path().join("wide.wav"), bad, 10);
        let error = PromptLibrary::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("wide.wav") && error.contains("16000"),
            "{error}"
        );
    }
}
