"""What the notebooks are made of: analyses of stored rows (study, retrieval_study, speculative), figures
(plots, ladder_plots), the threshold explorer (widgets), the quickstart and the papermill reproduction."""

from mccom_core.lab.quickstart import QuickstartConfig, run_quickstart
from mccom_core.lab.reproduce import PROFILES, Profile, get_profile
from mccom_core.lab.study import cascade_results, observations, retrieval_ablation
from mccom_core.lab.widgets import ThresholdExplorer, threshold_explorer

__all__ = [
    "PROFILES", "Profile", "QuickstartConfig", "ThresholdExplorer", "cascade_results", "observations",
    "get_profile", "retrieval_ablation", "run_quickstart", "threshold_explorer",
]
