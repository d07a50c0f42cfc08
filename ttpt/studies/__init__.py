"Studies of the platform itself: what the miniature CLIP must be to stand in for CLIP."
