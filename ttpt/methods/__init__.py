"The methods, each in one place: zero-shot, the episodic base, TPT and its peers (C-TPT, Zero, MTA, CoOp), Self-TPT, TLLA, MetaTPT, and the online TDA and DPE."
