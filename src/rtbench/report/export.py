"""CSV and JSON exports of every cell with all its statistics (the columns of ``Run.to_pandas()``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Every column but the raw samples."""
    df.drop(columns=[c for c in ("samples_ms",) if c in df]).to_csv(path, index=False)
    return path


def _plain(v):
    """JSON-ready values, recursively: numpy to Python, NaN to null."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def write_json(run, df: pd.DataFrame, path: Path) -> Path:
    """The run (id, status, sweep, environment, harness, peaks) and every cell, samples included."""
    doc = {"run": {"id": run.id, "created": run.created, "status": run.status, "sweep": run.sweep.to_dict(),
                   "env": run.env, "harness": run.harness, "peak": run.peak},
           "cells": df.to_dict(orient="records")}
    path.write_text(json.dumps(_plain(doc), indent=1, allow_nan=False, default=str), encoding="utf-8")
    return path
