/* Prints the layout of every rdma-core struct and constant lnd-o2ib's
 * bindings (src/sys/ffi.rs) use, one "KIND NAME VALUE" line each, from
 * rdma-core's own headers; the crate's test `layout_matches_rdma_core_headers`
 * compiles and runs it and compares every line with the Rust side. */
#include <stddef.h>
#include <stdio.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <ifaddrs.h>
#include <poll.h>
#include <fcntl.h>
#define S(t) printf("size %s %zu\nalign %s %zu\n", #t, sizeof(struct t), #t, _Alignof(struct t))
#define O(t,f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
int main(void){
S(ibv_sge); O(ibv_sge,addr); O(ibv_sge,length); O(ibv_sge,lkey);
S(ibv_send_wr); O(ibv_send_wr,wr_id); O(ibv_send_wr,next); O(ibv_send_wr,sg_list); O(ibv_send_wr,num_sge); O(ibv_send_wr,opcode); O(ibv_send_wr,send_flags); O(ibv_send_wr,imm_data); O(ibv_send_wr,wr.rdma.remote_addr); O(ibv_send_wr,wr.rdma.rkey); O(ibv_send_wr,qp_type); O(ibv_send_wr,bind_mw);
S(ibv_recv_wr); O(ibv_recv_wr,wr_id); O(ibv_recv_wr,next); O(ibv_recv_wr,sg_list); O(ibv_recv_wr,num_sge);
S(ibv_wc); O(ibv_wc,wr_id); O(ibv_wc,status); O(ibv_wc,opcode); O(ibv_wc,vendor_err); O(ibv_wc,byte_len); O(ibv_wc,imm_data); O(ibv_wc,qp_num); O(ibv_wc,src_qp); O(ibv_wc,wc_flags); O(ibv_wc,pkey_index); O(ibv_wc,slid); O(ibv_wc,sl); O(ibv_wc,dlid_path_bits);
S(ibv_qp_cap); O(ibv_qp_cap,max_send_wr); O(ibv_qp_cap,max_recv_wr); O(ibv_qp_cap,max_send_sge); O(ibv_qp_cap,max_recv_sge); O(ibv_qp_cap,max_inline_data);
S(ibv_qp_init_attr); O(ibv_qp_init_attr,qp_context); O(ibv_qp_init_attr,send_cq); O(ibv_qp_init_attr,recv_cq); O(ibv_qp_init_attr,srq); O(ibv_qp_init_attr,cap); O(ibv_qp_init_attr,qp_type); O(ibv_qp_init_attr,sq_sig_all);
S(ibv_context_ops); O(ibv_context_ops,poll_cq); O(ibv_context_ops,req_notify_cq); O(ibv_context_ops,post_send); O(ibv_context_ops,post_recv);
S(ibv_context); O(ibv_context,device); O(ibv_context,ops); O(ibv_context,cmd_fd); O(ibv_context,async_fd); O(ibv_context,num_comp_vectors); O(ibv_context,mutex); O(ibv_context,abi_compat);
S(ibv_pd); O(ibv_pd,context); O(ibv_pd,handle);
S(ibv_mr); O(ibv_mr,context); O(ibv_mr,pd); O(ibv_mr,addr); O(ibv_mr,length); O(ibv_mr,handle); O(ibv_mr,lkey); O(ibv_mr,rkey);
S(ibv_cq); O(ibv_cq,context); O(ibv_cq,channel); O(ibv_cq,cq_context); O(ibv_cq,handle); O(ibv_cq,cqe);
S(ibv_qp); O(ibv_qp,context); O(ibv_qp,qp_context); O(ibv_qp,pd); O(ibv_qp,send_cq); O(ibv_qp,recv_cq); O(ibv_qp,srq); O(ibv_qp,handle); O(ibv_qp,qp_num); O(ibv_qp,state); O(ibv_qp,qp_type);
S(rdma_conn_param); O(rdma_conn_param,private_data); O(rdma_conn_param,private_data_len); O(rdma_conn_param,responder_resources); O(rdma_conn_param,initiator_depth); O(rdma_conn_param,flow_control); O(rdma_conn_param,retry_count); O(rdma_conn_param,rnr_retry_count); O(rdma_conn_param,srq); O(rdma_conn_param,qp_num);
S(rdma_cm_event); O(rdma_cm_event,id); O(rdma_cm_event,listen_id); O(rdma_cm_event,event); O(rdma_cm_event,status); O(rdma_cm_event,param);
S(rdma_route);
S(rdma_cm_id); O(rdma_cm_id,verbs); O(rdma_cm_id,channel); O(rdma_cm_id,context); O(rdma_cm_id,qp); O(rdma_cm_id,route); O(rdma_cm_id,ps); O(rdma_cm_id,port_num); O(rdma_cm_id,event); O(rdma_cm_id,pd); O(rdma_cm_id,qp_type);
printf("offset rdma_cm_id.route.addr.dst_addr %zu\n", offsetof(struct rdma_cm_id, route.addr.dst_addr));
S(rdma_event_channel); O(rdma_event_channel,fd);
S(ibv_comp_channel); O(ibv_comp_channel,context); O(ibv_comp_channel,fd); O(ibv_comp_channel,refcnt);
S(pollfd); O(pollfd,fd); O(pollfd,events); O(pollfd,revents);
S(sockaddr_in);
S(ibv_device_attr); O(ibv_device_attr,max_mr_size); O(ibv_device_attr,max_qp_wr); O(ibv_device_attr,max_sge); O(ibv_device_attr,max_cqe); O(ibv_device_attr,max_pkeys);
printf("const IBV_WR_RDMA_WRITE %d\nconst IBV_WR_SEND %d\nconst IBV_WR_RDMA_READ %d\nconst IBV_SEND_SIGNALED %d\nconst IBV_QPT_RC %d\nconst IBV_WC_RECV %d\nconst IBV_WC_SEND %d\nconst IBV_WC_RDMA_WRITE %d\nconst IBV_WC_RDMA_READ %d\nconst IBV_ACCESS_LOCAL_WRITE %d\nconst IBV_ACCESS_REMOTE_WRITE %d\nconst IBV_ACCESS_REMOTE_READ %d\nconst RDMA_PS_TCP %d\n",
 IBV_WR_RDMA_WRITE, IBV_WR_SEND, IBV_WR_RDMA_READ, IBV_SEND_SIGNALED, IBV_QPT_RC, IBV_WC_RECV, IBV_WC_SEND, IBV_WC_RDMA_WRITE, IBV_WC_RDMA_READ, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE, IBV_ACCESS_REMOTE_READ, RDMA_PS_TCP);
printf("const RDMA_CM_EVENT_ADDR_RESOLVED %d\nconst RDMA_CM_EVENT_ROUTE_RESOLVED %d\nconst RDMA_CM_EVENT_CONNECT_REQUEST %d\nconst RDMA_CM_EVENT_REJECTED %d\nconst RDMA_CM_EVENT_ESTABLISHED %d\nconst RDMA_CM_EVENT_DISCONNECTED %d\n",
 RDMA_CM_EVENT_ADDR_RESOLVED, RDMA_CM_EVENT_ROUTE_RESOLVED, RDMA_CM_EVENT_CONNECT_REQUEST, RDMA_CM_EVENT_REJECTED, RDMA_CM_EVENT_ESTABLISHED, RDMA_CM_EVENT_DISCONNECTED);
printf("const RDMA_CM_EVENT_DEVICE_REMOVAL %d\nconst RDMA_CM_EVENT_TIMEWAIT_EXIT %d\nconst POLLIN %d\nconst IBV_ACCESS_ON_DEMAND %d\nconst F_GETFL %d\nconst F_SETFL %d\nconst O_NONBLOCK %d\n",
 RDMA_CM_EVENT_DEVICE_REMOVAL, RDMA_CM_EVENT_TIMEWAIT_EXIT, POLLIN, IBV_ACCESS_ON_DEMAND, F_GETFL, F_SETFL, O_NONBLOCK);
printf("const RDMA_CM_EVENT_ADDR_ERROR %d\nconst RDMA_CM_EVENT_ROUTE_ERROR %d\nconst RDMA_CM_EVENT_CONNECT_ERROR %d\nconst RDMA_CM_EVENT_UNREACHABLE %d\n",
 RDMA_CM_EVENT_ADDR_ERROR, RDMA_CM_EVENT_ROUTE_ERROR, RDMA_CM_EVENT_CONNECT_ERROR, RDMA_CM_EVENT_UNREACHABLE);
S(ifaddrs); O(ifaddrs,ifa_next); O(ifaddrs,ifa_name); O(ifaddrs,ifa_flags); O(ifaddrs,ifa_addr);
return 0;}
