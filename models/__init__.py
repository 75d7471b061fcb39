"""Language models (GPT, LSTM) with analytic parameter and FLOP counts. Imports torch only."""
