"""What an index's two bias columns are computed against: each modality's reference bank and
the library's sample of its own segments.

Both live in the library's vectors folder (`lbsearch.vectors.bias`, `lbsearch.vectors.filesample`)
and are read on first use. A writer that installs new ones saves them before the indices rebuilt
with them; a reader holds them in memory only. An index names the fingerprints it was built with,
and the `saved_*` fingerprints are what an index file must name to be up to date for every
process alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import Modality
from ..vectors.bias import NO_BIAS, Bank, bank_path, null_moments, read_bank, with_bias, write_bank
from ..vectors.filesample import FileSample, read_file_sample, sample_path, write_file_sample
from ..vectors.kinds import BiasKind


class References:
    """The banks and the file sample of one library folder (not thread-safe: the indices call
    it under their lock, or read what is already loaded)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._banks: dict[Modality, Bank | None] = {}
        self._file_sample: FileSample | None = None
        self._file_sample_read = False

    def bank(self, modality: Modality, dim: int | None) -> Bank | None:
        """The library's reference bank for the modality, if it fits vectors of `dim`."""
        if modality not in self._banks:
            self._banks[modality] = read_bank(bank_path(self.directory, modality.value))
        bank = self._banks[modality]
        return bank if bank is not None and bank.vectors.shape[1] == dim else None

    def fingerprint(self, modality: Modality, dim: int | None) -> str:
        bank = self.bank(modality, dim)
        return bank.fingerprint if bank is not None else NO_BIAS

    def saved_fingerprint(self, modality: Modality, dim: int | None) -> str:
        """The fingerprint of the bank saved in the library (not one a reader holds in memory
        only): what an index file must name to be up to date, for every process alike."""
        bank = read_bank(bank_path(self.directory, modality.value))
        return bank.fingerprint if bank is not None and bank.vectors.shape[1] == dim else NO_BIAS

    def file_sample(self) -> FileSample | None:
        """The library's sample of its own segments (example-file queries' bank), if any."""
        if not self._file_sample_read:
            self._file_sample = read_file_sample(sample_path(self.directory))
            self._file_sample_read = True
        return self._file_sample

    def file_fingerprint(self, dim: int | None) -> str:
        sample = self.file_sample()
        return sample.fingerprint_for(dim) if sample is not None and dim else NO_BIAS

    def saved_file_fingerprint(self, dim: int | None) -> str:
        """As `saved_fingerprint`, for the sample saved in the library."""
        sample = read_file_sample(sample_path(self.directory))
        return sample.fingerprint_for(dim) if sample is not None and dim else NO_BIAS

    def install(
        self,
        banks: dict[Modality, Bank],
        sample: FileSample | None,
        *,
        persist: bool,
        drop_sample: bool = False,
    ) -> None:
        """Make `banks` (per modality) and `sample` (when given) the library's, or no sample at
        all (`drop_sample`: `file_sample = 0`); a writer (`persist`) saves them first."""
        if persist:
            if sample is not None:
                write_file_sample(sample_path(self.directory), sample)
            elif drop_sample:
                sample_path(self.directory).unlink(missing_ok=True)
            for modality, bank in banks.items():
                write_bank(bank_path(self.directory, modality.value), bank)
        if sample is not None or drop_sample:
            self._file_sample, self._file_sample_read = sample, True
        self._banks.update(banks)

    def forget(self, modality: Modality) -> None:
        """Read the modality's bank and the sample again at next use (a writer may have saved
        others since)."""
        self._banks.pop(modality, None)
        self._file_sample_read = False

    def rows(
        self,
        modality: Modality,
        ids: np.ndarray,
        vectors: np.ndarray,
        width: int,
        kinds: tuple[BiasKind, ...] = (BiasKind.TEXT, BiasKind.FILE),
    ) -> np.ndarray:
        """Stored vectors of segments `ids` as an index of `width` columns holds them:
        [v, b_text, b_file, 0...]; only the biases of `kinds` (a query scores one, or none at
        alpha 0: the others stay 0 and cost nothing)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        bank = self.bank(modality, vectors.shape[1]) if BiasKind.TEXT in kinds else None
        biases = bank.biases(vectors) if bank and len(vectors) else None
        sample = self.file_sample() if BiasKind.FILE in kinds else None
        file_biases = sample.biases(ids, vectors) if sample is not None else None
        return with_bias(vectors, biases, width, file_biases)

    def null(
        self, modality: Modality, ids: np.ndarray, sample: np.ndarray
    ) -> dict[str, list[float]]:
        """Each kind of query's null, measured on `sample` (stored vectors of segments `ids`):
        its bank's queries scored with that kind's bias (file: the library sample's members,
        every modality's; without a sample, half the segments against the other half)."""
        dim = sample.shape[1]
        rows = self.rows(modality, ids, sample, dim + 2)
        text, file = rows[:, dim], rows[:, dim + 1]
        members = self.file_sample()
        queries = members.bank(dim)[1] if members is not None else np.zeros((0, dim))
        if len(queries):
            null = {"file": null_moments(queries, sample, file)}
        else:
            null = {"file": null_moments(sample[::2], sample[1::2], file[1::2])}
        bank = self.bank(modality, dim)
        if bank is not None:
            null["text"] = null_moments(bank.vectors, sample, text)
        return null
