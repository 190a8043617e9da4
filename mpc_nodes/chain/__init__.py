"""Settlement on an EVM: EIP-712 marks, the Vyper contracts and an in-process chain
(docs/SETTLEMENT.md). Imports nothing heavy at package import; vyper and py-evm load
when a contract is compiled or a chain is made."""
