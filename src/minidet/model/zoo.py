"""The bundled models: miniML's six public models converted to minidet model files.

The files live in the package (``minidet/models/<name>.minidet.safetensors``) with miniML's MIT
notice (``minidet/models/LICENSE-miniML``); ``scripts/convert_bundled_models.py`` regenerates
them from the original Keras files. Nothing here reads files outside the package.

Window sizes: miniML's documentation gives 600 samples (about 12 ms at 50 kHz) for the
granule-cell mEPSC base model and 3000 samples for granule-cell current-clamp events (mEPSPs).
For the other transfer-learning models no window size is published with the files; they keep
600 (the network input) and their descriptions say so. All six networks were checked to
answer to negative-going events only (synthetic events of both signs), so every
``training_direction`` is "negative"; the mEPSP and iGluSnFR models are meant for
positive-going events and their recordings are inverted for prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ModelFileError, UnknownModelError
from .modelfile import FILE_SUFFIX, ModelMetadata, read_metadata

MINIML_LICENSE = ("MIT; weights from miniML, Copyright (c) 2023 Igor Delvendahl "
                  "(see minidet/models/LICENSE-miniML)")
MINIML_REFERENCE = ("O'Neill et al. (2025) A deep learning framework for automated and "
                    "generalized synaptic event analysis. eLife 13:RP98485")

_UNKNOWN_WINDOW = (" miniML publishes no window size with this model; 600 samples (the "
                   "network input) is assumed: set window_size to the event length in your "
                   "recording's samples if events look cut off or too small.")


@dataclass(frozen=True)
class ZooEntry:
    """One bundled model: short name, miniML source file (relative) and its metadata.

    ``source`` is empty for models minidet trained itself (``gc-robust``: see
    ``scripts/train_default_model.py``); ``scripts/convert_bundled_models.py`` skips them.
    """

    name: str
    source: str  # path relative to miniML's models/ folder; "" = trained by minidet
    window_size: int
    training_direction: str
    event_direction: str
    description: str


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("gc", "GC_lstm_model.h5", 600, "negative", "negative",
                 "Cerebellar granule cell mEPSCs, voltage clamp (miniML base model). Trained "
                 "from scratch on the labelled mEPSC dataset of mossy fibre to granule cell "
                 "synapses (Delvendahl et al. 2019); 600 samples is about 12 ms at 50 kHz. " + MINIML_REFERENCE + "."),
        ZooEntry("gc-mepsp", "transfer_learning/GC_mEPSP/lstm_transfer.h5", 3000, "negative",
                 "positive",
                 "Cerebellar granule cell mEPSPs, current clamp (miniML transfer learning "
                 "from the gc model). The mEPSPs were inverted during transfer learning "
                 "(training_direction negative), so recordings are inverted for prediction. "
                 "Window 3000 samples as miniML's documentation gives for current-clamp events "
                 "in these cells; traces are resampled so that it fills the 600-sample network "
                 "input. " + MINIML_REFERENCE + "."),
        ZooEntry("nmj-wt", "transfer_learning/NMJ_wt/lstm_transfer.h5", 600, "negative",
                 "negative",
                 "Drosophila NMJ mEPSCs, wild type, two-electrode voltage clamp (miniML "
                 "transfer learning from the gc model; training data from larval neuromuscular "
                 "junctions, Baccino-Calace et al. 2022)." + _UNKNOWN_WINDOW + " " + MINIML_REFERENCE + "."),
        ZooEntry("nmj-gluriia", "transfer_learning/NMJ_GluRIIA/lstm_transfer.h5", 600,
                 "negative", "negative",
                 "Drosophila NMJ mEPSCs, GluRIIA mutants, two-electrode voltage clamp (miniML "
                 "transfer learning from the gc model; training data from larval neuromuscular "
                 "junctions, Baccino-Calace et al. 2022)." + _UNKNOWN_WINDOW + " "
                 + MINIML_REFERENCE + "."),
        ZooEntry("iglusnfr", "transfer_learning/iGluSnFR/lstm_transfer.h5", 600, "negative",
                 "positive",
                 "Optical minis, iGluSnFR3 glutamate imaging (miniML transfer learning from the "
                 "gc model; training data from Aggarwal et al. 2023). The network answers to "
                 "negative-going events only, so fluorescence increases (positive) are inverted "
                 "for prediction; set event_direction='negative' if your traces are already "
                 "inverted." + _UNKNOWN_WINDOW + " " + MINIML_REFERENCE + "."),
        ZooEntry("zebrafish", "transfer_learning/zebrafish/lstm_transfer.h5", 600, "negative",
                 "negative",
                 "Zebrafish sEPSCs, voltage clamp, adult telencephalon (miniML transfer "
                 "learning from the gc model; training data from Rupprecht & Friedrich "
                 "2018)." + _UNKNOWN_WINDOW + " " + MINIML_REFERENCE + "."),
        ZooEntry("gc-robust", "", 600, "negative", "negative",
                 "Granule-cell-like mEPSCs, voltage clamp, for noisy recordings and kinetics unlike "
                 "the gc model's training data; minidet's default model. Windows scaled by the "
                 "recording's noise SD; every layer of gc fine-tuned on simulated recordings with "
                 "random noise spectra, SNR 2-24 dB, rise 0.05-1 ms, decay 0.3-8 ms, overlapping "
                 "events and non-synaptic transients; threshold chosen per recording (auto). Recipe "
                 "and figures in the file's provenance; scripts/train_default_model.py rebuilds it."),
    )
}


def available_models() -> list[str]:
    """Short names of the bundled models, in registry order."""
    return list(ZOO)


def normalise_name(name: str) -> str:
    """Lower-case a short name and accept underscores for dashes (``NMJ_wt`` -> ``nmj-wt``)."""
    return name.strip().lower().replace("_", "-")


def is_model_name(name: str) -> bool:
    """True if ``name`` is a bundled model's short name (after :func:`normalise_name`)."""
    return normalise_name(name) in ZOO


def _models_dir() -> Path:
    return Path(str(resources.files("minidet") / "models"))


def bundled_path(name: str) -> Path:
    """Path of a bundled model file.

    Raises
    ------
    UnknownModelError
        ``name`` is not a bundled model (the message lists the known names).
    ModelFileError
        The model is registered but its file is not installed.
    """
    key = normalise_name(name) if isinstance(name, str) else name
    if key not in ZOO:
        raise UnknownModelError(
            f"unknown model {name!r}; bundled models: {', '.join(ZOO)} "
            "(or give the path of a .minidet.safetensors, .h5 or .keras file)")
    path = _models_dir() / f"{key}{FILE_SUFFIX}"
    if not path.is_file():
        raise ModelFileError(f"bundled model {key!r} is not installed ({path} is missing); "
                             "reinstall minidet or run scripts/convert_bundled_models.py")
    return path


def list_models() -> list[ModelMetadata]:
    """Metadata of every bundled model (headers only; no weights are loaded)."""
    return [read_metadata(bundled_path(name)) for name in ZOO]
