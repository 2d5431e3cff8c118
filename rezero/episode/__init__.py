"""One search episode: the agent loop and its protocol, answers and judges, the rewards, demonstrations
and traces."""
