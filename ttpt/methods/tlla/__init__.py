"TLLA: the sharpness-aware source stage (`sapt`), the backprop-free view selection (`stss`) and the loss-landscape analysis (`landscape`)."
