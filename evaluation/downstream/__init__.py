"""The paper's downstream experiment: SSL pre-training of SwinUNETR on synthetic volumes, then
segmentation with little labelled data (`mdiff-eval downstream`).

config (settings), data (folders in), views + ssl_head + ssl_losses (the self-supervised task),
pretrain (run by the shared trainer), folds (training subsets), finetune (segmentation and its
scores), sweep (the cells and results.csv), figures (Figures 4 and 5), run (the run folder).
"""
