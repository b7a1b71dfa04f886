"""What to do when the audit fails: for every feature and check of `mdiff-study audit`, what it
measures, what typically makes it tell real from synthetic cases, and where to read more.

`mdiff-study audit` prints the advice of each failure under its table and gives it in `--json`
as each failing row's `advice`. The docs' section on the audit features
(`docs/evaluation.md#audit-features`) says the same in prose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

AUDIT_DOCS = "docs/evaluation.md#audit-features"
ROAD_DOCS = "docs/study-format.md#blinding-one-road-from-every-input-to-its-case"
AUDIT_RULES = "docs/study-format.md#the-audit"
FILES_DOCS = "docs/study-format.md#the-files"
PRACTICE_DOCS = "docs/study-format.md#practice-final-answers-the-answer-history"
PAIRED_DOCS = "docs/study-format.md#paired-2afc-studies"

# Causes shared by several file-level features.
_REWRITTEN = ("a case file rewritten after `mdiff-study create` (re-saved by another tool, edited, "
              "or replaced); re-create the study, or restore the case files from a copy")
_COPIED = ("the study folder was copied or restored one source after the other (a script that "
           "copies the real cases first), or by chance for any copy (about 1% per order feature); "
           "re-create the study, which re-draws the orders until none separates")


@dataclass(frozen=True)
class Advice:
    """One feature's or check's explanation: what it measures, what typically makes it fail,
    and the docs' section to read."""

    measures: str
    cause: str
    read: str = AUDIT_DOCS

    def line(self, name: str) -> str:
        """The advice as one line under the audit's table."""
        return (f"{name}: measures {self.measures}. Typical cause: {self.cause}. "
                f"More: {self.read}")

    def as_dict(self) -> dict[str, str]:
        """The advice for `--json`."""
        return asdict(self)


FEATURE_ADVICE: dict[str, Advice] = {
    # --- file-level features ------------------------------------------------------------------
    "file size (bytes)": Advice(
        "the case file's size on disk (every case of a version 2 study has one size by "
        "construction)", _REWRITTEN, FILES_DOCS),
    "first gzip member (bytes)": Advice(
        "the compressed size of a version 1 case's voxels, before its padding",
        "compression follows the image's noise, so smooth synthetic volumes compress smaller; "
        "re-create the study (version 2 cases are uncompressed)", ROAD_DOCS),
    "gzip members": Advice(
        "how many gzip members a version 1 case holds (its data and the empty members that pad it "
        "to one size)",
        "the padding follows the compressed size, which follows the image's noise; re-create the "
        "study (version 2 cases are uncompressed)", ROAD_DOCS),
    "gzip header (variant)": Advice(
        "the bytes of a version 1 case's gzip header (a stored file name, time or flags), which "
        "must be the same in every case", _REWRITTEN, FILES_DOCS),
    "NIfTI header (variant)": Advice(
        "the bytes of the case's NIfTI header, which must be the same in every case (affine, "
        "units, description, calibration)", _REWRITTEN, FILES_DOCS),
    "stored data type (variant)": Advice(
        "the data type the voxels are stored in (int16 in every case)", _REWRITTEN, FILES_DOCS),
    "modification time (s)": Advice(
        "the case file's modification time, which must be the same in every case",
        "cases touched or copied without keeping their times (cp without -p, an editor, a "
        "sync tool); copy a study with its times kept (cp -a, rsync -a), or re-create it",
        AUDIT_RULES),
    "list position in study.json": Advice(
        "where the case stands in study.json's case list (the order a reader without a reader "
        "order sees)",
        "a study.json edited or written by another tool that lists cases by source; re-create "
        "the study", AUDIT_RULES),
    "file name (alphabetical order)": Advice(
        "the rank of the case's random id in alphabetical order",
        "cases renamed after create, or ids made from the source or the input's name; "
        "re-create the study", AUDIT_RULES),
    "inode number (creation order)": Advice(
        "the file's inode number, which usually follows the order the files were created in",
        _COPIED, AUDIT_RULES),
    "directory listing order": Advice(
        "the case's position in the cases folder's listing (`ls -f`), which usually follows the "
        "order the files were created in", _COPIED, AUDIT_RULES),
    "access time (s)": Advice(
        "when the case file was last read",
        "cases read in an order that follows their source (a script or viewer that opened the "
        "real cases first), or a copy made one source after the other; re-create the study, or "
        "copy it with its times kept", AUDIT_RULES),
    "change time (s)": Advice(
        "when the file's inode last changed (written, renamed, permissions changed)",
        "cases renamed, re-permissioned or rewritten one source after the other, or a copy made "
        "that way; re-create the study", AUDIT_RULES),
    # --- value-set features -------------------------------------------------------------------
    "distinct values": Advice(
        "how many different stored values the case holds",
        "an autoencoder's blur: smooth synthetic volumes fill fewer of the levels than a noisy "
        "scan; or real inputs of few levels (uint8) that reached the study by another road than "
        "create's dither; train the model further or check the inputs took the same road",
        ROAD_DOCS),
    "minimum": Advice(
        "the lowest stored value",
        "synthetic CT that never reaches the window's lower end (air), or inputs clipped or "
        "windowed before create; give create the inputs as they are, both sources in the same "
        "units", ROAD_DOCS),
    "maximum": Advice(
        "the highest stored value",
        "synthetic CT that never reaches the window's upper end (dense bone, metal), or inputs "
        "clipped or windowed before create; give create the inputs as they are, both sources in "
        "the same units", ROAD_DOCS),
    "fraction at the minimum": Advice(
        "the share of voxels at the lowest stored value",
        "one source's background is exactly constant (masked or zero-padded scans, or a "
        "sampler's output clipped at -1) where the other's is noise; mask or pad both sources "
        "alike", ROAD_DOCS),
    "fraction at the maximum": Advice(
        "the share of voxels at the highest stored value",
        "one source saturates (a sampler's output clipped at 1, or CT bone beyond the window) "
        "where the other does not; window both sources alike", ROAD_DOCS),
    "longest run of unused values": Advice(
        "the widest gap between stored values that no voxel holds",
        "a comb of levels: inputs of few levels (uint8, or a coarse rescale) stretched onto "
        "the study's range without create's dither, for example cases edited after create",
        ROAD_DOCS),
    "fraction of even values": Advice(
        "the share of voxels with an even stored value (about one half for a real scan)",
        "inputs stored in steps of 2 (a rescale slope of 2, or values doubled before create) in "
        "one source only", ROAD_DOCS),
    "background noise level": Advice(
        "the noise in the darkest quarter of the voxels (a robust standard deviation of "
        "neighbour differences)",
        "the decoder smooths away the scanner's background noise, or one source's background was "
        "masked or denoised; compare the sources' backgrounds, and mask both alike", ROAD_DOCS),
    "pairing with the practice truth": Advice(
        "whether a study case lies nearer the real or the synthetic practice cases in the "
        "value-set features",
        "a value-set difference between the sources that the labelled practice cases teach; "
        "fix the value-set feature that differs, or build the practice block from other "
        "inputs", PRACTICE_DOCS),
}

CHECK_ADVICE: dict[str, Advice] = {
    "file names": Advice(
        "that the cases folder holds exactly the cases study.json lists, named by random ids of "
        "one pattern",
        "a file added to, removed from or renamed in the cases folder after create; restore the "
        "folder from a copy of the study, or re-create it", FILES_DOCS),
    "practice files": Advice(
        "that practice/ holds exactly the listed practice cases, with the truth the key gives "
        "them",
        "a practice file added, removed or relabelled by hand, or the key of another study; "
        "re-create the study", PRACTICE_DOCS),
    "practice sources": Advice(
        "that no practice case comes from the input of a study case",
        "the same scan given for the practice block and for the study (or parts of one split "
        "scan in both); give the practice block inputs of its own", PRACTICE_DOCS),
    "practice content": Advice(
        "that no practice case is a copy or near copy of a study case",
        "the same volume given twice (a duplicate file, or one sample saved under two names); "
        "remove the duplicate from the inputs and re-create the study", PRACTICE_DOCS),
    "trial pairs": Advice(
        "that every trial of a paired study shows one real and one synthetic case, with the "
        "pairs and sides the key's trials column gives",
        "study.json's trials edited by hand, or the key of another study; re-create the study",
        PAIRED_DOCS),
    "side balance": Advice(
        "how many trials of layout A show the synthetic case on the left (floor or ceil of "
        "half)",
        "study.json's trials edited by hand (sides swapped), or a study not made by `mdiff-study "
        "create`: a reader could learn the side; re-create the study", PAIRED_DOCS),
    "side orders": Advice(
        "whether the trials' order or ids, or which member's id, list position or inode comes "
        "first, tell the side of the synthetic case",
        "trials or case files written in an order that follows the synthetic side (a script "
        "that always lists or copies the synthetic case first), or by chance for a copy of the "
        "study (about 1% per order); re-create the study", PAIRED_DOCS),
}


def advice_for(name: str) -> Advice | None:
    """The advice for a feature or check called `name` (None for a name the audit never uses)."""
    return FEATURE_ADVICE.get(name) or CHECK_ADVICE.get(name)
