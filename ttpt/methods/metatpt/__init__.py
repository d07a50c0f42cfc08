"MetaTPT: differentiable affine views (`augment`) and the dual, meta-learned loop (`method`)."
