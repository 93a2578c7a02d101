export type { InpodErrorCode } from "./errors.js";
export { InpodError } from "./errors.js";
export type { NetnsId, NetnsRef } from "./netns.js";
export { Netns, netnsInterfaces, runInNetns } from "./netns.js";
export type {
  ConnectInNetnsOptions,
  ListenInNetnsOptions,
  NetnsSocketOptions,
  SocketAddress,
  SocketRef,
} from "./sockets.js";
export {
  connectInNetns,
  DEFAULT_INPOD_MARK,
  getMark,
  getTransparent,
  listenInNetns,
  originalDestination,
  setMark,
  setTransparent,
  socketFd,
} from "./sockets.js";
export type { BindUdpInNetnsOptions } from "./udp.js";
export { bindUdpInNetns } from "./udp.js";
export type {
  InpodWorkload,
  WorkloadInfo,
  ZdsClientOptions,
  ZdsRequestKind,
  ZdsWorkloadHandler,
} from "./zds.js";
export {
  DEFAULT_INPOD_UDS,
  DEFAULT_NETNS_CHECK_INTERVAL_MS,
  MAX_ZDS_MESSAGE_BYTES,
  ZdsClient,
} from "./zds.js";
