"Self-TPT: contrastive prompt tuning on text (`cpt`) and the method with its source stage (`method`)."
