// `spillway/testing`: helpers for testing Spillway stores and integrations with any test runner.
export { type StoreContractOptions, storeContract } from './store-contract.js';
