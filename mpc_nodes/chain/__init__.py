"""Settlement on an EVM: EIP-712 marks, the Vyper contracts and an in-process chain
(docs/SETTLEMENT.md). `eip712` needs only mpcnet's own dependencies; `contracts` and
`evm_local` need the `chain` extra (vyper, eth-tester with py-evm)."""
