"""Column names and file names shared by every module that reads or writes run records.

Keep every name here so that the writer, the readers and the reports can never disagree.
"""

from __future__ import annotations

# --- one row per evaluation (records.parquet) -------------------------------------------
RUN_ID = "run_id"
SWEEP = "sweep"
TASK = "task"
TASK_SIGNATURE = "task_signature"
OPTIMIZER = "optimizer"  # full preset name, e.g. "lgbm-milp/paper"
PRESET_HASH = "preset_hash"
SEED = "seed"
BATCH = "batch"  # 0 is the initial design, 1.. are optimizer batches
EVAL = "eval"  # 0-based index over all evaluations of the run, initial design included
QUERY = "query"  # 1-based index over optimizer queries; 0 for the initial design
LATENT = "latent"  # compact bytes, see bench.core.records.encode_latent
SCORE = "score"
BEST_SO_FAR = "best_so_far"
IS_INIT = "is_init"
IS_DUPLICATE = "is_duplicate"
IS_FALLBACK = "is_fallback"
PROPOSE_S = "propose_s"  # wall time of the propose call that produced this row's batch
EVALUATE_S = "evaluate_s"  # wall time of evaluating this row's batch
ELAPSED_S = "elapsed_s"  # wall time since the run started, at the end of this row's batch
MODEL_VERSION = "model_version"  # latent-space version (increments at each retraining)
REGRET = "regret"  # known optimum minus score, NaN when the task has no known optimum
HELDOUT_SCORE = "heldout_score"  # independent scorer, NaN when the task has none
PRIOR_LOGLIK = "prior_loglik"  # log-likelihood of the latent under the task's code prior, NaN without one
#: per-point columns a task may fill through ``Evaluation.extras`` (NaN where it does not)
EXTRA_COLUMNS = (REGRET, HELDOUT_SCORE, PRIOR_LOGLIK)

RECORD_COLUMNS = (
    RUN_ID, TASK, TASK_SIGNATURE, OPTIMIZER, PRESET_HASH, SEED, BATCH, EVAL, QUERY, LATENT,
    SCORE, BEST_SO_FAR, IS_INIT, IS_DUPLICATE, IS_FALLBACK, PROPOSE_S, EVALUATE_S, ELAPSED_S,
    MODEL_VERSION, *EXTRA_COLUMNS,
)
# Columns that measure the machine, not the algorithm: excluded when comparing two runs.
TIMING_COLUMNS = (PROPOSE_S, EVALUATE_S, ELAPSED_S)

# --- one row per proposal diagnostic (proposals.parquet) --------------------------------
DIAG_BATCH = "batch"
DIAG_KIND = "kind"  # "fallback", "solver", ...
DIAG_MESSAGE = "message"

# --- one row per set-level metric checkpoint (metrics.parquet) ---------------------------
METRIC_AT_QUERY = "at_query"
METRIC_SUBSET = "subset"  # "top" or "last"
METRIC_NAME = "metric"  # "fid", "kid", ...
METRIC_VALUE = "value"
METRIC_STD = "std"
METRIC_N = "n"
METRIC_REFERENCE = "reference"
METRIC_FEATURES = "features"  # feature extractor, e.g. "inception-v3-pool3" or "task-features"

# --- files of one run folder --------------------------------------------------------------
RECORDS_FILE = "records.parquet"
DIAGNOSTICS_FILE = "proposals.parquet"
METRICS_FILE = "metrics.parquet"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.npz"  # pickle-free (bench.store.safe)
QUERY_IMAGES_FILE = "query_images.u8"  # raw uint8 frames of every scored image, appended per batch
INITIAL_IMAGES_FILE = "initial_images.npz"
ERROR_FILE = "error.txt"

# run.json "status" values
STATUS_RUNNING = "running"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_PENDING = "pending"
