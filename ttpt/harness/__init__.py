"The harness: the method contract, run identity, resumable results, evaluation, shared view features, the source-stage setup, reports and the papers' numbers."
