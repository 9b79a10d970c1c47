"""Continual-learning methods on the shared SAC, as Continual World runs them (Wołczyk et al.
2021; awarelab/continual_world @73f63bb, continualworld/methods/): the parameter regularisers
L2, EWC and MAS (`regularizers`), PackNet's per-task weight masks (`packnet`), A-GEM's episodic
memory and gradient projection (`agem`), and Continual World's actor and critic bodies with
the bookkeeping they share (`params`). The agent is `gmtl_rl.agents.continual_sac`.
"""
